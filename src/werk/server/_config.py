"""Settings of the server (what ``werk server`` flags and EmbeddedServer take), checked
when they are made: a bad one is a :class:`~werk.ConfigurationError` naming it.

Example::

    >>> cfg = ServerConfig(bind="127.0.0.1:0", storage="memory")
    >>> cfg.host, cfg.port
    ('127.0.0.1', 0)
    >>> ServerConfig(storage="redis")
    Traceback (most recent call last):
    ...
    werk.ConfigurationError: storage must be 'sqlite' or 'memory', not 'redis'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werk._errors import ConfigurationError
from werk._protocol.command_lines import MAX_COMMAND_LINE
from werk.server._confd import Config, load_config

__all__ = [
    "DEFAULT_BIND",
    "STORAGES",
    "SYNC_LEVELS",
    "ServerConfig",
    "default_data_dir",
    "split_bind",
]

DEFAULT_BIND = "127.0.0.1:7419"
STORAGES = ("sqlite", "memory")
SYNC_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def default_data_dir() -> Path:
    """``$WERK_DATA`` if set, else ``$XDG_DATA_HOME/werk`` (``~/.local/share/werk``)."""
    env = os.environ.get("WERK_DATA")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "werk"


def split_bind(bind: str) -> tuple[str, int]:
    """``"host:port"``, ``":port"`` or ``"[::1]:port"`` into host and port (an empty host
    is every interface); :class:`~werk.ConfigurationError` for anything else."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not port.isascii() or int(port) > 65535:
        raise ConfigurationError(f"bind address must be HOST:PORT, not {bind!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass
class ServerConfig:
    """Every setting of the server, with the real server's defaults."""

    bind: str = DEFAULT_BIND
    storage: str = "sqlite"  # or "memory"
    data_dir: Path | None = None  # sqlite only; default_data_dir() when None
    password: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    max_connections: int = 2000
    max_line: int = MAX_COMMAND_LINE
    fetch_timeout: float = 2.0
    handshake_timeout: float = 2.0
    synchronous: str = "NORMAL"  # sqlite: FULL also survives power loss
    config_dir: Path | None = None  # what server extensions read (--config-dir)
    config_data: Mapping[str, Any] | None = None  # or the same as Python data
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ConfigurationError(f"storage must be 'sqlite' or 'memory', not {self.storage!r}")
        split_bind(self.bind)
        if str(self.synchronous).upper() not in SYNC_LEVELS:
            raise ConfigurationError(
                f"synchronous must be NORMAL or FULL, not {self.synchronous!r}"
            )
        if self.config_dir is not None:
            self.config_dir = Path(self.config_dir)
            if not self.config_dir.is_dir():
                raise ConfigurationError(f"config_dir {str(self.config_dir)!r} is not a directory")
        if self.config_data is not None:
            if self.config_dir is not None:
                raise ConfigurationError("give config_dir or config, not both")
            if not isinstance(self.config_data, Mapping):
                raise ConfigurationError(
                    f"config must be a mapping such as {{'cron': [...]}}, not {self.config_data!r}"
                )
        for name in ("max_connections", "max_line", "fetch_timeout", "handshake_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigurationError(f"{name} must be a number above 0, not {value!r}")

    def load(self) -> Config:
        """Read the configuration (``config_dir``'s ``conf.d/*.toml`` or ``config_data``)."""
        return load_config(self.config_dir, self.config_data)

    @property
    def host(self) -> str:
        """The host part of ``bind``."""
        return split_bind(self.bind)[0]

    @property
    def port(self) -> int:
        """The port part of ``bind`` (0 = any free port)."""
        return split_bind(self.bind)[1]

"""Settings of the embedded server (what ``werk server`` flags and EmbeddedServer take).

Example::

    >>> cfg = ServerConfig(bind="127.0.0.1:0", storage="memory")
    >>> cfg.host, cfg.port
    ('127.0.0.1', 0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from werk._protocol.command_lines import MAX_COMMAND_LINE

__all__ = ["DEFAULT_BIND", "ServerConfig", "default_data_dir"]

DEFAULT_BIND = "127.0.0.1:7419"


def default_data_dir() -> Path:
    """``$WERK_DATA`` if set, else ``$XDG_DATA_HOME/werk`` (``~/.local/share/werk``).

    Example::

        >>> default_data_dir().name
        'werk'
    """
    env = os.environ.get("WERK_DATA")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "werk"


def split_bind(bind: str) -> tuple[str, int]:
    """``"host:port"``, ``":port"`` or ``"[::1]:port"`` into host and port."""
    host, sep, port = bind.rpartition(":")
    if not sep:
        raise ValueError(f"bind address must be HOST:PORT, not {bind!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


@dataclass
class ServerConfig:
    """Every setting of the server, with the real server's defaults.

    Example::

        >>> ServerConfig().bind, ServerConfig(bind=":7500").port
        ('127.0.0.1:7419', 7500)
    """

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
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def host(self) -> str:
        """The host part of ``bind``."""
        return split_bind(self.bind)[0]

    @property
    def port(self) -> int:
        """The port part of ``bind`` (0 = any free port)."""
        return split_bind(self.bind)[1]

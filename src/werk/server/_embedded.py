"""Run the server inside your program or test suite: ``with EmbeddedServer() as srv``.

The server runs on its own event loop in a background thread, on a free port of
127.0.0.1, with memory storage unless told otherwise. ``srv.url`` is what a client needs
(``FAKTORY_URL``). With ``clock=ManualClock(...)`` time stands still until
:meth:`EmbeddedServer.advance` moves it, which also runs every periodic task that came due
and waits until the server has done so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from werk._errors import ConfigurationError
from werk.server._clock import Clock, ManualClock
from werk.server._config import ServerConfig
from werk.server._extension import Extension
from werk.server._manager import Manager
from werk.server._server import Server

__all__ = ["EmbeddedServer"]

T = TypeVar("T")

_OPTIONS = frozenset(f.name for f in dataclasses.fields(ServerConfig)) - {
    "bind",
    "storage",
    "data_dir",
    "password",
    "config_data",
}


class EmbeddedServer:
    """A werk server in your process, for tests, demos and scripts.

    Keywords: ``storage`` ``"memory"`` (the default) or ``"sqlite"`` (durable, in
    ``data_dir``), ``password``, ``clock`` (a :class:`ManualClock` makes time stand still
    until :meth:`advance`), ``bind`` (default ``127.0.0.1:0``: a free port), and the
    server's other settings: ``fetch_timeout`` (seconds an empty FETCH blocks, 2),
    ``handshake_timeout`` (2), ``max_connections`` (2000), ``max_line`` (bytes, 16 MiB),
    ``tls_cert`` and ``tls_key`` (PEM files: TLS only), ``synchronous`` (SQLite's
    ``"NORMAL"`` or ``"FULL"``), ``config_dir`` (the directory whose ``conf.d/*.toml``
    configures cron and throttles, as ``werk server --config-dir``; :meth:`reload_config`
    reads it again) or ``config`` (the same as Python data, shaped like the merged TOML:
    ``{"cron": [{"schedule": "@hourly", "job": {"type": "Tidy"}}], "throttles": {...}}``;
    a bad entry is refused naming it, as ``config["cron"][0]["job"]["type"]``). A bad value
    or an unknown keyword is a :class:`~werk.ConfigurationError`. ``extensions``:
    werk's own server extensions (internal; the standard ones when None).

    Example::

        from werk.server import EmbeddedServer, ManualClock

        with EmbeddedServer(clock=ManualClock(1_700_000_000)) as srv:
            client = werk.Client(srv.url)
            ...
            srv.advance(65)       # reservations and heartbeats expire now
            assert srv.info()["retries"] == 1

    In asyncio code the server shares your event loop instead of starting a thread::

        async with EmbeddedServer() as srv:
            async with werk.AsyncClient(srv.url) as client:
                ...
    """

    def __init__(
        self,
        *,
        storage: str = "memory",
        data_dir: str | os.PathLike[str] | None = None,
        password: str | None = None,
        clock: Clock | None = None,
        bind: str = "127.0.0.1:0",
        extensions: Sequence[Extension] | None = None,
        config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigurationError(f"EmbeddedServer() got unknown options: {', '.join(unknown)}")
        if storage == "sqlite" and data_dir is None:
            raise ConfigurationError("EmbeddedServer(storage='sqlite') needs data_dir=")
        self.config = ServerConfig(
            bind=bind,
            storage=storage,
            data_dir=Path(data_dir) if data_dir is not None else None,
            password=password,
            config_data=config,
            **options,
        )
        self.clock = clock
        self.server = Server(self.config, clock=clock, extensions=extensions)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # -- what users need -------------------------------------------------------------

    @property
    def url(self) -> str:
        """``tcp://127.0.0.1:PORT`` (with the password: :attr:`url_with_password`)."""
        return self.server.url

    @property
    def url_with_password(self) -> str:
        """``tcp://:password@127.0.0.1:PORT`` (the plain URL when there is no password)."""
        if not self.config.password:
            return self.url
        scheme, rest = self.url.split("://", 1)
        from urllib.parse import quote

        return f"{scheme}://:{quote(self.config.password, safe='')}@{rest}"

    @property
    def password(self) -> str | None:
        """The password clients must send, if any."""
        return self.config.password

    @property
    def host(self) -> str:
        """The bound host."""
        return self.server.address[0]

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.address[1]

    @property
    def manager(self) -> Manager:
        """The server's state, werk-internal (only touch it through :meth:`call` from other
        threads); :meth:`info` is the supported summary."""
        return self.server.manager

    def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on the server's loop and return its result (thread-safe)."""
        if self._loop is None or threading.current_thread() is self._thread:
            return func(*args)

        async def run() -> T:
            return func(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def advance(self, seconds: float) -> None:
        """Move the manual clock forward and wait until due tasks and deadlines ran."""
        if not isinstance(self.clock, ManualClock):
            raise ConfigurationError("advance() needs EmbeddedServer(clock=ManualClock(...))")
        self.clock.advance(seconds)
        self.call(self.server.tick)

    def set_time(self, when: float) -> None:
        """Set the manual clock to ``when`` (Unix seconds; never backwards) and catch up."""
        if not isinstance(self.clock, ManualClock):
            raise ConfigurationError("set_time() needs EmbeddedServer(clock=ManualClock(...))")
        self.clock.set(when)
        self.call(self.server.tick)

    def reload_config(self) -> None:
        """Read ``config_dir`` again, as ``werk server`` does on SIGHUP (Python data given
        as ``config`` is checked again as it is); a bad configuration raises
        :class:`~werk.ConfigurationError` and the previous one stays in force."""
        error = self.call(self.server.reload_config)
        if error is not None:
            raise error

    def info(self) -> dict[str, Any]:
        """Queue sizes, set sizes and counters, read on the server's loop."""

        def snapshot() -> dict[str, Any]:
            m = self.manager
            return {
                "queues": m.queue_sizes(),
                "scheduled": len(m.scheduled),
                "retries": len(m.retries),
                "dead": len(m.dead),
                "working": len(m.working),
                "reserved": len(m.reservations),
                "workers": len(m.workers),
                "connections": self.server.stats.connections,
                "processed": m.counters.get("processed", 0),
                "failures": m.counters.get("failures", 0),
            }

        return self.call(snapshot)

    # -- thread mode -----------------------------------------------------------------

    def start(self) -> EmbeddedServer:
        """Start in a background thread; returns once the port is open."""
        self._thread = threading.Thread(target=self._run, name="werk-server", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            loop.close()
            self._loop = None  # nothing to stop
            self._started.set()
            return
        self._started.set()
        try:
            loop.run_until_complete(self.server.serve_forever())
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop the server and its thread (idempotent)."""
        if self._loop is None or self._thread is None:
            return
        if self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
            fut.result(30)
            self._thread.join(30)
        self._loop = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- asyncio mode ----------------------------------------------------------------

    async def __aenter__(self) -> EmbeddedServer:
        await self.server.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.server.stop()

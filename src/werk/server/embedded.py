"""Run the server inside your program or test suite: ``with EmbeddedServer() as srv``.

The server runs on its own event loop in a background thread, on a free port of
127.0.0.1, with memory storage unless told otherwise. ``srv.url`` is what a client needs
(``FAKTORY_URL``). With ``clock=ManualClock(...)`` time stands still until
:meth:`EmbeddedServer.advance` moves it, which also runs every periodic task that came due
and waits until the server has done so.

Example::

    >>> from werk.server import EmbeddedServer, ManualClock
    >>> with EmbeddedServer(clock=ManualClock(1_700_000_000)) as srv:
    ...     srv.url.startswith("tcp://127.0.0.1:")
    ...     srv.advance(65)                 # reservations and heartbeats expire now
    True

And in asyncio code (the server then shares your loop)::

    async with EmbeddedServer() as srv:
        ...
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from werk.server.clock import Clock, ManualClock
from werk.server.config import ServerConfig
from werk.server.manager import Manager
from werk.server.server import Server

__all__ = ["EmbeddedServer"]

T = TypeVar("T")


class EmbeddedServer:
    """A werk server for tests and demos (see the module docstring).

    Parameters: ``storage`` ``"memory"`` (default) or ``"sqlite"`` (in ``data_dir``),
    ``password``, ``clock``, ``bind`` (default ``127.0.0.1:0``: a free port), and any other
    :class:`~werk.server.config.ServerConfig` field as a keyword (``fetch_timeout=0.2``).

    Example::

        >>> job = b'{"jid":"jid-00000001","jobtype":"T","args":[]}'
        >>> with EmbeddedServer(storage="memory", fetch_timeout=0.2) as srv:
        ...     srv.call(srv.manager.push_bytes, job)
        ...     srv.call(srv.manager.queue_sizes)
        {'default': 1}
    """

    def __init__(
        self,
        *,
        storage: str = "memory",
        data_dir: str | os.PathLike[str] | None = None,
        password: str | None = None,
        clock: Clock | None = None,
        bind: str = "127.0.0.1:0",
        **options: Any,
    ) -> None:
        self.config = ServerConfig(
            bind=bind,
            storage=storage,
            data_dir=Path(data_dir) if data_dir is not None else None,
            password=password,
            **options,
        )
        if storage == "sqlite" and data_dir is None:
            raise ValueError("EmbeddedServer(storage='sqlite') needs data_dir=")
        self.clock = clock
        self.server = Server(self.config, clock=clock)
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
        """The server's state (only touch it through :meth:`call` from other threads)."""
        return self.server.manager

    def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on the server's loop and return its result (thread-safe).

        Example::

            sizes = srv.call(lambda: srv.manager.queue_sizes())
        """
        if self._loop is None or threading.current_thread() is self._thread:
            return func(*args)

        async def run() -> T:
            return func(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def advance(self, seconds: float) -> None:
        """Move the manual clock forward and wait until due tasks and deadlines ran."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs EmbeddedServer(clock=ManualClock(...))")
        self.clock.advance(seconds)
        self.call(self.server.tick)

    def set_time(self, when: float) -> None:
        """Set the manual clock to ``when`` (Unix seconds; never backwards) and catch up."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("set_time() needs EmbeddedServer(clock=ManualClock(...))")
        self.clock.set(when)
        self.call(self.server.tick)

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
            self._started.set()
            loop.close()
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

"""The asyncio TCP server: listens, accepts, runs the periodic tasks, stops cleanly.

:class:`Server` wires a storage, a :class:`~werk.server._manager.Manager`, its
:class:`~werk.server._periodic.PeriodicTasks` and a clock to a listening socket; each
accepted socket is a :class:`~werk.server._server_connection.ServerConnection`. What
``werk server`` runs (``werk.cli._server``) and what
:class:`~werk.server.EmbeddedServer` wraps. Hooks for other parts (the web UI):
``server.manager`` (all state), ``server.loop`` (run everything on it),
``server.config``, ``server.stats``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any

from werk._errors import ConfigurationError
from werk._version import __version__
from werk.server._clock import Clock, ManualClock, SystemClock
from werk.server._config import ServerConfig, default_data_dir
from werk.server._dispatch import ServerStats
from werk.server._extension import Extension
from werk.server._features import standard_extensions
from werk.server._info_reply import FAKTORY_VERSION
from werk.server._manager import Manager
from werk.server._periodic import PeriodicTasks
from werk.server._releaser import Releaser
from werk.server._server_connection import ServerConnection
from werk.server._storage import SQLiteStorage, Storage, open_storage

__all__ = ["Server"]

log = logging.getLogger("werk.server")


class _ManualTimer:
    """A deadline on a manual clock; fires when the clock is advanced past it."""

    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Server:
    """A Faktory-compatible server on one event loop (see the module docstring)."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        clock: Clock | None = None,
        storage: Storage | None = None,
        extensions: Sequence[Extension] | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        if extensions is None:
            extensions = standard_extensions(self.config)
        self.extensions = tuple(extensions)
        self.clock: Clock = clock or SystemClock()
        self.storage: Storage = storage  # type: ignore[assignment]  # opened in start()
        self.manager: Manager = None  # type: ignore[assignment]
        self.tasks: PeriodicTasks = None  # type: ignore[assignment]
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.stats = ServerStats(self.clock.now())
        self.connections: set[ServerConnection] = set()
        self.stopping = False
        self.address: tuple[str, int] = ("", 0)
        self._listener: asyncio.base_events.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._resuming = False  # a chain of task slices is under way
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()
        self._stopped = asyncio.Event()

    # -- life cycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``tcp://host:port`` (``tcp+tls://`` with TLS), for FAKTORY_URL."""
        host, port = self.address
        scheme = "tcp+tls" if self.config.tls_cert else "tcp"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{port}"

    async def start(self) -> None:
        """Open the storage, load the state and start listening."""
        cfg = self.config
        self.loop = asyncio.get_running_loop()
        if self.storage is None:
            data_dir = cfg.data_dir if cfg.data_dir is not None else default_data_dir()
            options: dict[str, Any] = {}
            if cfg.storage == "sqlite":
                options["synchronous"] = cfg.synchronous
                if "max_pages" in cfg.extra:
                    options["max_pages"] = cfg.extra["max_pages"]
            self.storage = open_storage(cfg.storage, data_dir, **options)
        if isinstance(self.storage, SQLiteStorage):
            self.storage.attach(self.loop)
            self.storage.on_error = self._storage_failed
        self.manager = Manager(self.storage, self.clock, extensions=self.extensions)
        self.manager.release = Releaser(self.loop)
        self.tasks = PeriodicTasks(self.manager)
        try:
            self.manager.configure(cfg.load())  # a bad configuration: no start
        except BaseException:
            self.storage.close()
            raise
        self.stats = ServerStats(self.clock.now())
        ssl_ctx = None
        if cfg.tls_cert:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ssl_ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        self._listener = await self.loop.create_server(
            lambda: ServerConnection(self),
            cfg.host,
            cfg.port,
            ssl=ssl_ctx,
            ssl_handshake_timeout=cfg.handshake_timeout if ssl_ctx else None,
            reuse_address=True,
            backlog=1024,
        )
        sock = self._listener.sockets[0]
        self.address = sock.getsockname()[:2]
        if isinstance(self.clock, ManualClock):
            self.clock.subscribe(self._clock_moved)
        else:
            self._ticker = self.loop.create_task(self._tick_loop())
        m = self.manager
        log.info(
            "werk %s (Faktory %s protocol) listening on %s; storage %s; %d queued, "
            "%d scheduled, %d retries, %d dead, %d reserved; %s",
            __version__,
            FAKTORY_VERSION,
            self.url,
            self.storage.location,
            sum(len(q) for q in m.queues.values()),
            len(m.scheduled),
            len(m.retries),
            len(m.dead),
            len(m.reservations),
            "password required" if cfg.password else "no password",
        )

    async def serve_forever(self) -> None:
        """Wait until :meth:`stop` is called."""
        await self._stopped.wait()

    async def stop(self) -> None:
        """Stop accepting, answer further commands with ``shutdown in progress``, close
        every connection, commit and close the storage."""
        if self.stopping:
            await self._stopped.wait()
            return
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if isinstance(self.clock, ManualClock):
            self.clock.unsubscribe(self._clock_moved)
        # Let commands already waiting on a commit get their replies.
        await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.close()
        await asyncio.sleep(0)
        if self.storage is not None:
            try:
                self.storage.close()
            except Exception:
                log.exception("error closing the storage")
            if isinstance(self.storage, SQLiteStorage):
                st = self.storage
                log.info(
                    "%d journal writes (%.3f s), %d folds into SQLite (%.3f s)",
                    st.commits,
                    st.commit_seconds,
                    st.folds,
                    st.fold_seconds,
                )
        self._stopped.set()
        log.info("werk server stopped")

    def reload_config(self) -> ConfigurationError | None:
        """Have the extensions read the configuration directory again (SIGHUP). A bad
        configuration is logged and returned, and the previous one stays in force."""
        if self.manager is None or self.stopping:
            return None
        try:
            self.manager.configure(self.config.load())
        except ConfigurationError as exc:
            log.error("configuration not reloaded, the previous one stays in force: %s", exc)
            return exc
        where = self.config.config_dir or ("Python data" if self.config.config_data else "(none)")
        log.info("configuration reloaded from %s", where)
        return None

    # -- time ------------------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        """Run ``callback`` after ``delay`` seconds of the server's clock; ``.cancel()``able."""
        if not self.clock.manual:
            return self.loop.call_later(delay, callback, *args)
        timer = _ManualTimer(self.clock.now() + delay, callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def _clock_moved(self, now: float) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.tick)

    def tick(self) -> None:
        """Run due periodic tasks and fire due deadlines (called on every manual clock move)."""
        if self.manager is None or self.stopping:
            return
        self.tasks.run_all_due()
        now = self.clock.now()
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, timer = heapq.heappop(timers)
            if not timer.cancelled:
                timer.callback(*timer.args)

    async def _tick_loop(self) -> None:
        # Faktory runs its tasks on a 1 s ticker, on Unix seconds divisible by the period.
        while True:
            await asyncio.sleep(1.0 - time.time() % 1.0 + 0.001)
            try:
                self.tasks.run_due(self.clock.now())
            except Exception:
                log.exception("periodic task failed")
            if self.tasks.unfinished and not self._resuming:
                self._resuming = True
                self.loop.call_soon(self._resume_tasks)

    def _resume_tasks(self) -> None:
        # A slice per loop turn of the tasks with more to do: clients get in between.
        more = False
        if not self.stopping:
            try:
                more = self.tasks.resume()
            except Exception:
                log.exception("periodic task failed")
        self._resuming = more
        if more:
            self.loop.call_soon(self._resume_tasks)

    # -- storage failure -------------------------------------------------------------

    def _storage_failed(self, exc: BaseException) -> None:
        log.error("storage commit failed (%s); reloading state from %s", exc, self.storage.location)
        try:
            self.manager.load()
        except Exception:
            log.exception("cannot reload state after a failed commit")

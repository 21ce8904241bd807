"""What the slots of one worker share: the worker's side of :class:`~werk.worker._host.SlotHost`.

One :class:`Crew` per worker holds the connection settings, the queue order, the ledger of
jobs in flight, the outage, and the worker's three stop signals (terminating, fetching, hard
stop). Executors and slots see it only through the ``SlotHost`` protocol; the worker drives
it (``fetching``, the events) and reads what the slots reported (``error``, ``slots_done``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werk.client import AsyncClient, Client, ClientSettings
from werk.worker._backoff import Outage
from werk.worker._ledger import Ledger
from werk.worker._queues import QueueSelector

if TYPE_CHECKING:
    from werk.worker._app import App
    from werk.worker._run import JobRun

__all__ = ["Crew"]

log = logging.getLogger("werk.worker")


class Crew:
    """The shared state of one worker's slots (a :class:`~werk.worker._host.SlotHost`).

    ``client_args`` are the keyword arguments of every connection (the worker's identity,
    timeouts, TLS); ``request(what)`` tells the worker's supervisor something happened.
    """

    def __init__(
        self,
        app: App,
        settings: ClientSettings,
        client_args: dict[str, Any],
        selector: QueueSelector,
        *,
        concurrency: int,
        request: Callable[[str], None],
        job_timeout: float | None = None,
        timeout_grace: float = 5.0,
    ) -> None:
        self.concurrency = concurrency
        self.timeout_grace = timeout_grace
        self.abandoned_threads = 0
        self.where = str(settings.endpoint)
        self.settings = settings
        self.selector = selector
        self.fetching = True
        self.stopping = threading.Event()  # terminate has begun (JobContext.shutting_down)
        self.hard_stop = threading.Event()  # the deadline passed: no more waiting or retrying
        self.slots_done = threading.Event()
        self.error: BaseException | None = None
        self.outage = Outage(self.where)
        self.ledger = Ledger(
            app.jobs,
            app.hooks,
            wid=settings.wid,
            stopping=self.stopping,
            default_backtrace=app.default_backtrace,
            job_timeout=job_timeout,
        )
        self._client_args = client_args
        self._request = request
        # The per-job calls, bound once.
        self.fetch_line: Callable[[], bytes] = selector.next_line
        self.begin: Callable[[dict[str, Any]], JobRun] = self.ledger.begin
        self.finish: Callable[[JobRun], bytes | None] = self.ledger.finish
        self.connection_failed: Callable[[BaseException], None] = self.outage.failed
        self.connection_ok: Callable[[], None] = self.outage.recovered
        self.fetched: Callable[[float, bool], None] | None = app.hooks.after_fetch

    def new_client(self) -> Client:
        """A new connection that says HELLO as this worker."""
        return Client(**self._client_args)

    def new_async_client(self) -> AsyncClient:
        """The asyncio twin of :meth:`new_client`."""
        return AsyncClient(**self._client_args)

    def fatal(self, exc: BaseException) -> None:
        """An error no retry can fix (a wrong password): log it once and terminate."""
        if self.error is None:
            self.error = exc
            log.error("worker %s cannot continue: %s", self.settings.wid, exc)
        self._request("terminate")

    def lost_report(self, line: bytes) -> None:
        """A finished job's ACK/FAIL could not be delivered before the hard stop."""
        log.error(
            "could not deliver %s before the shutdown deadline (server unreachable); "
            "the job will run again when its reservation expires",
            line.decode("utf-8", "replace").strip()[:200],
        )

    def slots_exited(self) -> None:
        """The executor's last slot has exited."""
        self.slots_done.set()
        self._request("slots-exited")

"""The thread executor: one thread and one client (connection) per slot, like the Go worker.

Each slot loops: FETCH, run the handler right here, then write the ACK (or FAIL) and the next
FETCH in one packet. There is no hand-off between threads on the hot path, an ACK never
waits behind another slot's blocking FETCH, and a slot never sleeps while a job is waiting.
Async handlers run on one shared event loop thread; the slot waits for their result.

The process executor reuses these slots and only replaces how a handler is called
(:mod:`werk.worker.processes`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from werk._errors import AuthenticationError, JobNotFoundError, ServerError
from werk.client import Client
from werk.worker._round_trip import reconnectable, report_and_fetch, report_owed
from werk.worker.backoff import Backoff
from werk.worker.context import JobContext, reset_current, set_current
from werk.worker.runner import InFlight
from werk.worker.threadpool import DaemonThreadPool

if TYPE_CHECKING:
    from werk.worker.app import JobFunction
    from werk.worker.worker import Worker

__all__ = ["LoopThread", "ThreadSlots", "owed", "report_error"]

log = logging.getLogger("werk.worker")

Invoke = Callable[[int, InFlight, "JobFunction[Any, Any]"], "BaseException | None"]


def report_error(exc: ServerError, report: bytes, retried: bool) -> None:
    """Log what the server said to an ACK/FAIL (the report itself is then settled)."""
    jid = report.split(b'"jid":"', 1)[-1].split(b'"', 1)[0].decode("utf-8", "replace")
    if isinstance(exc, JobNotFoundError):
        if retried:
            # The first attempt went through before the connection broke.
            log.debug("report for jid=%s was already applied", jid)
        else:
            log.warning(
                "server no longer holds jid=%s (its reservation expired?): %s; it may run again",
                jid,
                exc,
            )
    else:
        log.error("server refused the report for jid=%s: %s", jid, exc)


def owed(error: ServerError, report: bytes) -> None:
    """Log a report the server could not store (it is sent again, with back-off)."""
    log.warning(
        "the server could not store %s: %s; sending it again",
        report.split(b" ", 1)[0].decode("ascii", "replace"),
        error,
    )


class LoopThread:
    """An event loop on a daemon thread, for async handlers called from sync code."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running: set[concurrent.futures.Future[Any]] = set()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                # asyncio.to_thread in a handler: daemon threads, never joined at exit.
                loop.set_default_executor(DaemonThreadPool(None, "werk-async-default"))
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="werk-asyncio", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def run(self, ctx: JobContext, factory: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``factory()`` on the loop with ``ctx`` as the current job; wait for it."""

        async def wrapped() -> Any:
            token = set_current(ctx)
            try:
                return await factory()
            finally:
                reset_current(token)

        coro: Coroutine[Any, Any, Any] = wrapped()
        future = asyncio.run_coroutine_threadsafe(coro, self._start())
        self._running.add(future)
        try:
            return future.result()
        finally:
            self._running.discard(future)

    def cancel(self) -> None:
        """Cancel every handler still running (the shutdown deadline FAILed their jobs)."""
        for future in list(self._running):
            future.cancel()

    def stop(self) -> None:
        """Stop the loop (pending jobs are abandoned; the worker FAILs them first)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


class ThreadSlots:
    """``concurrency`` fetch-and-run threads, each with its own client."""

    def __init__(self, worker: Worker, invoke: Invoke | None = None) -> None:
        self.worker = worker
        self.invoke: Invoke = invoke or self._invoke_here
        self.loop = LoopThread()
        self.clients: list[Client] = []
        self.threads: list[threading.Thread] = []
        self.running = 0
        self.in_io: list[bool] = []  # per slot: inside a FETCH
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every slot."""
        n = self.worker.concurrency
        self.running = n
        self.in_io = [False] * n
        for i in range(n):
            client = self.worker.client()
            self.clients.append(client)
            t = threading.Thread(
                target=self._slot, args=(i, client), name=f"werk-slot-{i}", daemon=True
            )
            self.threads.append(t)
        for t in self.threads:
            t.start()

    def stop_jobs(self) -> None:
        """At the deadline: cancel the async handlers still running (their jobs are FAILed).

        A sync handler's thread cannot be stopped (Python has no way to); slots are daemon
        threads, so it ends with the process, which ``werk worker`` then ends at once.
        """
        self.loop.cancel()

    def io_busy(self) -> bool:
        """True while some slot may be blocked in a FETCH."""
        return any(self.in_io)

    def close(self) -> None:
        """After the shutdown: say END on the connections of slots that did not exit.

        A slot still blocked in I/O keeps its client (closing would wait for the reply);
        it closes it itself when the reply or the timeout comes.
        """
        for index, client in enumerate(self.clients):
            if not self.in_io[index]:
                client.close()
        self.loop.stop()

    def _invoke_here(
        self, slot: int, flight: InFlight, fn: JobFunction[Any, Any]
    ) -> BaseException | None:
        args = flight.job.args
        try:
            if fn.is_async:
                func = fn.func
                self.loop.run(flight.ctx, lambda: func(*args))
            else:
                fn.func(*args)
        except BaseException as exc:
            return exc
        return None

    def _slot(self, index: int, client: Client) -> None:
        w = self.worker
        runner = w.runner
        selector = w.selector
        hard_stop = w.hard_stop
        outage = w.outage
        backoff = Backoff()
        report: bytes | None = None
        retried = False
        try:
            while True:
                fetch = selector.next_line() if w.fetching else None
                if report is None and fetch is None:
                    break
                if hard_stop.is_set():
                    if report is not None:
                        w.lost_report(report)
                    break
                self.in_io[index] = True
                try:
                    error, payload = report_and_fetch(client, report, fetch)
                except Exception as exc:
                    if isinstance(exc, AuthenticationError):
                        w.fatal(exc)
                    elif not reconnectable(exc):
                        if isinstance(exc, ServerError):
                            log.error("FETCH refused: %s", exc)
                        else:
                            log.exception("unexpected error in fetch slot %d", index)
                    else:
                        outage.failed(exc)
                    self.in_io[index] = False
                    retried = report is not None
                    hard_stop.wait(backoff.next_delay())
                    continue
                self.in_io[index] = False
                if outage.active:
                    outage.recovered()
                if error is not None and report is not None:
                    if payload is None and report_owed(error):
                        owed(error, report)
                        hard_stop.wait(backoff.next_delay())
                        continue
                    report_error(error, report, retried)
                backoff.attempts = 0
                report = None
                retried = False
                if payload is None:
                    continue
                if hard_stop.is_set():
                    # Fetched in the last moments: give it straight back.
                    self._final(client, runner.refuse(payload))
                    break
                flight, fn = runner.begin(payload)
                err = runner.unknown(flight.job) if fn is None else self.invoke(index, flight, fn)
                report = runner.finish(flight, err)
        finally:
            client.close()
            with self._lock:
                self.running -= 1
                last = self.running == 0
            if last:
                w.slots_exited()

    def _final(self, client: Client, report: bytes) -> None:
        try:
            report_and_fetch(client, report, None)
        except Exception as exc:
            log.warning("could not give back a job at shutdown: %s", exc)

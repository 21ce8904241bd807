"""The asyncio executor: every slot is a task with its own AsyncClient on one event loop.

Async handlers are awaited right in their slot's task; sync handlers go to a pool of
``concurrency`` daemon threads (with the job's context): at the shutdown deadline the slot
stops waiting for a handler it cannot stop, and the thread never holds the process open.
As in the thread executor, a job's ACK (or FAIL) is written in the same packet as the
slot's next FETCH. The loop runs on a thread of its own, so the worker's main thread stays
free for signals and the shutdown deadline; a handler that blocks the loop still cannot stop
the heartbeat.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import threading
from typing import TYPE_CHECKING, Any

from werk._errors import AuthenticationError, ServerError
from werk.client import AsyncClient
from werk.worker._round_trip import reconnectable, report_and_fetch_async, report_owed
from werk.worker.backoff import Backoff
from werk.worker.threadpool import DaemonThreadPool
from werk.worker.threads import owed, report_error

if TYPE_CHECKING:
    from werk.worker.app import JobFunction
    from werk.worker.runner import InFlight
    from werk.worker.worker import Worker

__all__ = ["AsyncSlots"]


log = logging.getLogger("werk.worker")


def _returned(flight: InFlight, future: concurrent.futures.Future[Any]) -> None:
    # A sync handler's thread is done. If the shutdown deadline already claimed its job (its
    # slot stopped waiting), a success still counts: the job gets its ACK, not a FAIL.
    if flight.done and not future.cancelled() and future.exception() is None:
        flight.late = True


class AsyncSlots:
    """``concurrency`` slot tasks on an event loop running in its own thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.pool = DaemonThreadPool(worker.concurrency, "werk-sync")
        # asyncio.to_thread and run_in_executor(None, ...) in a handler: daemon threads too.
        self.loop.set_default_executor(DaemonThreadPool(None, "werk-async-default"))
        self.clients: list[AsyncClient] = []
        self._thread: threading.Thread | None = None
        self._hard_stop: asyncio.Event | None = None
        self._in_handler: set[asyncio.Task[Any] | None] = set()

    def start(self) -> None:
        """Start the loop thread and the slot tasks."""
        self._thread = threading.Thread(target=self._run, name="werk-asyncio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except RuntimeError:
            pass  # stopped at the shutdown deadline with a handler still running
        finally:
            self.worker.slots_exited()

    async def _main(self) -> None:
        self._hard_stop = asyncio.Event()
        w = self.worker
        # Bridge the worker's threading event into the loop.
        loop = self.loop
        threading.Thread(
            target=lambda: (w.hard_stop.wait(), loop.call_soon_threadsafe(self._hard_stop_set)),
            name="werk-asyncio-stop",
            daemon=True,
        ).start()
        tasks = [asyncio.create_task(self._slot(i)) for i in range(w.concurrency)]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _hard_stop_set(self) -> None:
        if self._hard_stop is not None:
            self._hard_stop.set()

    async def _pause(self, delay: float) -> None:
        assert self._hard_stop is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._hard_stop.wait(), delay)

    async def _invoke(self, flight: InFlight, fn: JobFunction[Any, Any]) -> BaseException | None:
        try:
            if fn.is_async:
                await fn.func(*flight.job.args)
            else:
                ctx = contextvars.copy_context()
                future = self.pool.submit(ctx.run, fn.func, *flight.job.args)
                future.add_done_callback(functools.partial(_returned, flight))
                await asyncio.wrap_future(future, loop=self.loop)
        except BaseException as exc:
            return exc
        return None

    async def _slot(self, index: int) -> None:
        w = self.worker
        runner = w.runner
        selector = w.selector
        client = w.async_client()
        self.clients.append(client)
        task = asyncio.current_task()
        backoff = Backoff()
        report: bytes | None = None
        retried = False
        try:
            while True:
                fetch = selector.next_line() if w.fetching else None
                if report is None and fetch is None:
                    break
                if w.hard_stop.is_set():
                    if report is not None:
                        w.lost_report(report)
                    break
                try:
                    error, payload = await report_and_fetch_async(client, report, fetch)
                except Exception as exc:
                    if isinstance(exc, AuthenticationError):
                        w.fatal(exc)
                    elif reconnectable(exc):
                        w.outage.failed(exc)
                    elif isinstance(exc, ServerError):
                        log.error("FETCH refused: %s", exc)
                    else:
                        log.exception("unexpected error in fetch slot %d", index)
                    retried = report is not None
                    await self._pause(backoff.next_delay())
                    continue
                if w.outage.active:
                    w.outage.recovered()
                if error is not None and report is not None:
                    if payload is None and report_owed(error):
                        owed(error, report)
                        await self._pause(backoff.next_delay())
                        continue
                    report_error(error, report, retried)
                backoff.attempts = 0
                report = None
                retried = False
                if payload is None:
                    continue
                if w.hard_stop.is_set():
                    try:
                        await report_and_fetch_async(client, runner.refuse(payload), None)
                    except Exception as exc:
                        log.warning("could not give back a job at shutdown: %s", exc)
                    break
                flight, fn = runner.begin(payload)
                if fn is None:
                    err: BaseException | None = runner.unknown(flight.job)
                else:
                    self._in_handler.add(task)
                    try:
                        err = await self._invoke(flight, fn)
                    finally:
                        self._in_handler.discard(task)
                report = runner.finish(flight, err)
        finally:
            await client.close()

    async def _close_clients(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)

    def stop_jobs(self) -> None:
        """At the deadline: cancel the handlers still running (their jobs were FAILed).

        A sync handler's thread cannot be stopped; its task stops waiting for it.
        """

        def cancel() -> None:
            for task in list(self._in_handler):
                if task is not None:
                    task.cancel()

        if self.loop.is_running():
            self.loop.call_soon_threadsafe(cancel)

    def io_busy(self) -> bool:
        """True while a slot may be waiting for a FETCH reply."""
        return not self.worker._slots_done.is_set()

    def close(self) -> None:
        """Stop the loop's leftovers (END on the clients still open) and the sync thread pool.

        Never waits long: a loop that a handler blocks cannot close anything, and its thread,
        like the pool's, is a daemon thread that ends with the process.
        """
        if self._thread is not None and self.worker._slots_done.is_set():
            self._thread.join(1.0)  # the slots have exited: the loop is finishing
        if self.loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._close_clients(), self.loop)
            with contextlib.suppress(Exception):
                done.result(0.5)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.pool.shutdown(wait=False, cancel_futures=True)

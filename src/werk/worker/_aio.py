"""The asyncio executor: every slot is a task with its own AsyncClient on one event loop.

Each task runs its :class:`~werk.worker._slot.Slot` with awaited I/O. Async handlers are
awaited right in their slot's task; sync handlers go to a pool of ``concurrency`` daemon
threads (with the job's context): at the shutdown deadline the slot stops waiting for a
handler it cannot stop, and the thread never holds the process open. As in the thread
executor, a job's ACK (or FAIL) is written in the same packet as the slot's next FETCH. The
loop runs on a thread of its own, so the worker's main thread stays free for signals and the
shutdown deadline; a handler that blocks the loop still cannot stop the heartbeat.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from werk.client import AsyncClient
from werk.worker._host import SlotHost
from werk.worker._run import JobRun
from werk.worker._slot import Pause, Send, Slot
from werk.worker._threadpool import DaemonThreadPool

__all__ = ["AsyncSlots"]


def _returned(run: JobRun, future: concurrent.futures.Future[Any]) -> None:
    # A sync handler's thread is done. If the shutdown deadline already claimed its job (its
    # slot stopped waiting), a success still counts: the job gets its ACK, not a FAIL.
    if run.done and not future.cancelled() and future.exception() is None:
        run.late = True


class AsyncSlots:
    """``concurrency`` slot tasks on an event loop running in its own thread."""

    def __init__(self, host: SlotHost) -> None:
        self.host = host
        self.loop = asyncio.new_event_loop()
        self.pool = DaemonThreadPool(host.concurrency, "werk-sync")
        # asyncio.to_thread and run_in_executor(None, ...) in a handler: daemon threads too.
        self.loop.set_default_executor(DaemonThreadPool(None, "werk-async-default"))
        self.slots = [Slot(host) for _ in range(host.concurrency)]
        self.clients: list[AsyncClient] = []
        self._thread: threading.Thread | None = None
        self._exited = threading.Event()
        self._hard_stop: asyncio.Event | None = None
        self._running: dict[JobRun, asyncio.Task[Any]] = {}

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
            self._exited.set()
            self.host.slots_exited()

    async def _main(self) -> None:
        self._hard_stop = asyncio.Event()
        # Bridge the host's threading event into the loop.
        hard_stop, loop = self.host.hard_stop, self.loop
        threading.Thread(
            target=lambda: (hard_stop.wait(), loop.call_soon_threadsafe(self._hard_stop_set)),
            name="werk-asyncio-stop",
            daemon=True,
        ).start()
        await asyncio.gather(*(self._slot(slot) for slot in self.slots), return_exceptions=True)

    def _hard_stop_set(self) -> None:
        if self._hard_stop is not None:
            self._hard_stop.set()

    async def _pause(self, delay: float) -> None:
        assert self._hard_stop is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._hard_stop.wait(), delay)

    async def _slot(self, slot: Slot) -> None:
        # drive() in _threads.py, with awaits.
        client = self.host.new_async_client()
        self.clients.append(client)
        action = slot.next()
        fetched = self.host.fetched
        started = 0.0
        try:
            while True:
                if type(action) is Send:
                    timed = fetched if action.blocking else None
                    if timed is not None:
                        started = time.monotonic()
                    try:
                        replies = await client.execute_many(action.lines, blocking=action.blocking)
                    except Exception as exc:
                        action = slot.failed(exc)
                    else:
                        if timed is not None:
                            timed(time.monotonic() - started, replies[-1] is not None)
                        action = slot.replied(replies)
                elif type(action) is JobRun:
                    await self._invoke(action)
                    action = slot.ran(action)
                elif type(action) is Pause:
                    await self._pause(action.seconds)
                    action = slot.next()
                else:
                    return
        finally:
            await client.close()

    async def _invoke(self, run: JobRun) -> None:
        fn = run.fn
        assert fn is not None
        args = run.job.args
        task = asyncio.current_task()
        if task is not None:
            self._running[run] = task
        try:
            with run:
                if fn.is_async:
                    await fn.func(*args)
                else:
                    ctx = contextvars.copy_context()
                    future = self.pool.submit(ctx.run, fn.func, *args)
                    future.add_done_callback(functools.partial(_returned, run))
                    await asyncio.wrap_future(future, loop=self.loop)
        finally:
            self._running.pop(run, None)
            if run.timed_out and task is not None and sys.version_info >= (3, 11):
                task.uncancel()  # the slot's task goes on with its next job

    def stop(self, runs: Sequence[JobRun]) -> None:
        """Cancel these runs' handlers. A sync handler's thread cannot be stopped; its slot
        stops waiting for it (and, for a job's timeout, the pool gets one more thread, so
        that the stuck one does not cost a slot its concurrency)."""
        hard_stop = self.host.hard_stop.is_set()

        def cancel() -> None:
            for run in runs:
                task = self._running.get(run)
                if task is not None:
                    task.cancel()
                    if not hard_stop and run.fn is not None and not run.fn.is_async:
                        self.pool.grow()

        if self.loop.is_running():
            self.loop.call_soon_threadsafe(cancel)

    def io_busy(self) -> bool:
        """True while some slot waits for the server's reply."""
        return any(slot.in_io for slot in self.slots)

    async def _close_clients(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)

    def close(self) -> None:
        """Stop the loop's leftovers (END on the clients still open) and the sync thread pool.

        Never waits long: a loop that a handler blocks cannot close anything, and its thread,
        like the pool's, is a daemon thread that ends with the process.
        """
        if self._thread is not None and self._exited.is_set():
            self._thread.join(1.0)  # the slots have exited: the loop is finishing
        if self.loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._close_clients(), self.loop)
            with contextlib.suppress(Exception):
                done.result(0.5)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.pool.shutdown(wait=False, cancel_futures=True)

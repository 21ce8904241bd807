"""The asyncio executor: every slot is a task with its own AsyncClient on one event loop.

Each task runs its :class:`~werk.worker._slot.Slot` with awaited I/O. Async handlers are
awaited right in their slot's task; sync handlers go to ``concurrency`` daemon threads (with
the job's context), whose results come back to the loop: at the shutdown deadline the slot
stops waiting for a handler it cannot stop, and the thread never holds the process open. As
in the thread executor, a job's ACK (or FAIL) is written in the same packet as the slot's
next FETCH. The loop runs on a thread of its own, so the worker's main thread stays free for
signals and the shutdown deadline; a handler that blocks the loop still cannot stop the
heartbeat.

The loop is uvloop's when uvloop is installed (``werk[fast]``), asyncio's own otherwise.
Set the environment variable ``WERK_EVENT_LOOP=asyncio`` before the worker starts to run
asyncio's own loop anyway (``uvloop`` asks for uvloop, and fails if it is missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from werk._errors import ConfigurationError
from werk.client import AsyncClient
from werk.worker._host import SlotHost
from werk.worker._run import JobRun
from werk.worker._slot import Pause, Send, Slot
from werk.worker._threadpool import DaemonThreadPool

__all__ = ["EVENT_LOOP_VARIABLE", "AsyncSlots", "new_event_loop"]

EVENT_LOOP_VARIABLE = "WERK_EVENT_LOOP"

_monotonic = time.monotonic

_Work = tuple[
    "asyncio.Future[None]", JobRun, contextvars.Context, Callable[..., Any], Sequence[Any]
]


def new_event_loop(choice: str | None = None) -> asyncio.AbstractEventLoop:
    """A new event loop: ``choice`` (default: the ``WERK_EVENT_LOOP`` environment variable)
    is ``"asyncio"`` for asyncio's own, ``"uvloop"`` for uvloop's; unset or empty, uvloop's
    when it is installed."""
    if choice is None:
        choice = os.environ.get(EVENT_LOOP_VARIABLE, "")
    choice = choice.strip().lower()
    if choice == "asyncio":
        return asyncio.new_event_loop()
    if choice not in ("", "uvloop"):
        raise ConfigurationError(f"{EVENT_LOOP_VARIABLE} must be asyncio or uvloop, not {choice!r}")
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise ConfigurationError(
                f"{EVENT_LOOP_VARIABLE}=uvloop, but uvloop is not installed: "
                "pip install 'werk[fast]'"
            ) from None
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _settle(threads: _SyncThreads, fut: asyncio.Future[None], error: BaseException | None) -> None:
    # On the loop: a sync handler returned (or raised); its thread takes the next one.
    threads.idle += 1
    if not fut.done():  # not cancelled by a timeout or the deadline meanwhile
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


class _SyncThreads:
    # Daemon threads for sync handlers, fed from the loop's thread only: a handler's result
    # goes back with one call_soon_threadsafe (no concurrent.futures.Future to chain).
    # ``idle`` and ``started`` change on the loop's thread alone, so need no lock.

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.items: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self.idle = 0
        self.started = 0

    def run(
        self, run: JobRun, func: Callable[..., Any], args: Sequence[Any]
    ) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self.loop.create_future()
        self.items.put((fut, run, contextvars.copy_context(), func, args))
        if self.idle:
            self.idle -= 1
        elif self.started < self.limit:
            self.started += 1
            name = f"werk-sync-{self.started - 1}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        return fut

    def grow(self) -> None:
        # One of the threads is stuck in a handler that timed out.
        self.limit += 1

    def _work(self) -> None:
        items, call_soon_threadsafe = self.items, self.loop.call_soon_threadsafe
        while True:
            item = items.get()
            if item is None:
                items.put(None)  # wake the next thread: the executor is closing
                return
            fut, run, ctx, func, args = item
            del item
            error: BaseException | None = None
            try:
                ctx.run(func, *args)
            except BaseException as exc:
                error = exc
            else:
                # If the shutdown deadline already claimed the job (its slot stopped
                # waiting), a success still counts: the job gets its ACK, not a FAIL.
                if run.done:
                    run.late = True
            try:
                call_soon_threadsafe(_settle, self, fut, error)
            except RuntimeError:
                return  # the loop is closed: nobody waits any more
            del fut, run, ctx, func, args, error

    def close(self) -> None:
        # Work not started is dropped; the threads end (busy ones when their handler returns).
        with contextlib.suppress(queue.Empty):
            while True:
                self.items.get_nowait()
        self.items.put(None)


class AsyncSlots:
    """``concurrency`` slot tasks on an event loop running in its own thread (uvloop's when
    it is installed, unless ``WERK_EVENT_LOOP=asyncio``)."""

    def __init__(self, host: SlotHost) -> None:
        self.host = host
        self.loop = new_event_loop()
        self.threads = _SyncThreads(self.loop, host.concurrency)
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
        # drive() in _threads.py, with awaits; the handler's call inline (once per job).
        client = self.host.new_async_client()
        self.clients.append(client)
        exchange = client.execute_many
        running, threads = self._running, self.threads
        task = asyncio.current_task()
        assert task is not None
        action = slot.next()
        fetched = self.host.fetched
        started = 0.0
        try:
            while True:
                if type(action) is Send:
                    timed = fetched if action.blocking else None
                    if timed is not None:
                        started = _monotonic()
                    try:
                        replies = await exchange(action.lines, blocking=action.blocking)
                    except Exception as exc:
                        action = slot.failed(exc)
                    else:
                        if timed is not None:
                            timed(_monotonic() - started, replies[-1] is not None)
                        action = slot.replied(replies)
                elif type(action) is JobRun:
                    fn = action.fn
                    assert fn is not None
                    running[action] = task
                    try:
                        with action:
                            if fn.is_async:
                                await fn.func(*action.job.args)
                            else:
                                await threads.run(action, fn.func, action.job.args)
                    finally:
                        del running[action]
                        if action.timed_out and sys.version_info >= (3, 11):
                            task.uncancel()  # the slot's task goes on with its next job
                    action = slot.ran(action)
                elif type(action) is Pause:
                    await self._pause(action.seconds)
                    action = slot.next()
                else:
                    return
        finally:
            await client.close()

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
                        self.threads.grow()

        if self.loop.is_running():
            self.loop.call_soon_threadsafe(cancel)

    def io_busy(self) -> bool:
        """True while some slot waits for the server's reply."""
        return any(slot.in_io for slot in self.slots)

    async def _close_clients(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)

    def close(self) -> None:
        """Stop the loop's leftovers (END on the clients still open) and the sync threads.

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
        self.threads.close()

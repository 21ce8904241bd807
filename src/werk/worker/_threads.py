"""The thread executor: one thread and one connection per slot, like the Go worker.

Each slot thread runs its :class:`~werk.worker._slot.Slot` with blocking I/O
(:func:`drive`): FETCH, run the handler right here, then write the ACK (or FAIL) and the
next FETCH in one packet. There is no hand-off between threads on the hot path, an ACK never
waits behind another slot's blocking FETCH, and a slot never sleeps while a job is waiting.
Async handlers run on one shared event loop thread (:class:`LoopThread`); the slot waits for
their result.

The process executor runs the same :class:`~werk.worker._slot.Slot` without a thread per slot
(one I/O thread multiplexes them all, see :mod:`werk.worker._processes`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from werk.client import Client
from werk.worker._host import SlotHost
from werk.worker._run import JobRun
from werk.worker._slot import Pause, Send, Slot
from werk.worker._threadpool import DaemonThreadPool

_monotonic = time.monotonic

__all__ = ["LoopThread", "ThreadSlots", "drive"]

log = logging.getLogger("werk.worker")


class _Retired:
    """The stop signal of an abandoned slot: once its handler returns, it stops."""

    __slots__ = ()

    def is_set(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> bool:
        return True


_RETIRED = _Retired()


def _runs_nothing(run: JobRun) -> None:
    raise AssertionError(f"a slot that does not fetch cannot run {run!r}")


def drive(
    slot: Slot,
    client: Client,
    invoke: Callable[[JobRun], None] = _runs_nothing,
    fetched: Callable[[float, bool], None] | None = None,
) -> None:
    """Run ``slot`` to its end on this thread: its I/O on ``client`` (blocking), its jobs
    by ``invoke(run)``, its pauses on its stop signal; each FETCH's round trip is told to
    ``fetched``, if given."""
    stop = slot.stop
    action = slot.next()
    started = 0.0
    while True:
        if type(action) is Send:
            timed = fetched if action.blocking else None  # (blocking: a FETCH ends the lines)
            if timed is not None:
                started = _monotonic()
            try:
                replies = client.execute_many(action.lines, blocking=action.blocking)
            except Exception as exc:
                action = slot.failed(exc)
            else:
                if timed is not None:
                    timed(_monotonic() - started, replies[-1] is not None)
                action = slot.replied(replies)
        elif type(action) is JobRun:
            invoke(action)
            action = slot.ran(action)
        elif type(action) is Pause:
            stop.wait(action.seconds)
            action = slot.next()
        else:
            return


class LoopThread:
    """An event loop on a daemon thread, for async handlers called from sync code."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running: dict[JobRun, concurrent.futures.Future[Any]] = {}

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

    def run(self, run: JobRun, func: Callable[..., Awaitable[Any]], args: Sequence[Any]) -> Any:
        """Await ``func(*args)`` on the loop, in a copy of the calling thread's context
        (``werk.current_job()`` included); wait for its result."""
        context = contextvars.copy_context()

        async def in_context() -> Any:
            for var, value in context.items():
                var.set(value)
            return await func(*args)

        future = asyncio.run_coroutine_threadsafe(in_context(), self._start())
        self._running[run] = future
        try:
            return future.result()
        finally:
            self._running.pop(run, None)

    def cancel(self, runs: Sequence[JobRun]) -> None:
        """Cancel these runs' handlers, if they are running here."""
        for run in runs:
            future = self._running.get(run)
            if future is not None:
                future.cancel()

    def stop(self) -> None:
        """Stop the loop (handlers still pending are abandoned; their jobs were reported)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


class ThreadSlots:
    """``concurrency`` slot threads, each with its own connection.

    ``current[i]`` is the run slot ``i`` is calling a handler for (or ``None``): a job that
    times out there and does not return within the host's ``timeout_grace`` has its thread
    abandoned, and a new thread (with a new slot and connection) takes slot ``i``.
    """

    def __init__(self, host: SlotHost) -> None:
        self.host = host
        self.loop = LoopThread()
        self.slots: list[Slot] = []
        self.clients: list[Client] = []
        self.threads: list[threading.Thread] = []
        self.current: list[JobRun | None] = [None] * host.concurrency
        self.running = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every slot."""
        host = self.host
        self.running = host.concurrency
        for index in range(host.concurrency):
            slot = Slot(host)
            client = host.new_client()
            self.slots.append(slot)
            self.clients.append(client)
            self.threads.append(
                threading.Thread(
                    target=self._slot,
                    args=(index, slot, client),
                    name=f"werk-slot-{index}",
                    daemon=True,
                )
            )
        for thread in self.threads:
            thread.start()

    def _slot(self, index: int, slot: Slot, client: Client) -> None:
        try:
            drive(slot, client, functools.partial(self.invoke, index), self.host.fetched)
        finally:
            client.close()
            with self._lock:
                # An abandoned slot's successor counts as the slot's thread.
                current = self.slots[index] is slot
                if current:
                    self.running -= 1
                last = current and self.running == 0
            if last:
                self.host.slots_exited()

    def invoke(self, index: int, run: JobRun) -> None:
        """Call the run's handler in slot ``index``: a sync one right here, an async one on
        the shared event loop."""
        fn = run.fn
        assert fn is not None
        args = run.job.args
        current = self.current
        current[index] = run
        try:
            with run:
                if fn.is_async:
                    self.loop.run(run, fn.func, args)
                else:
                    fn.func(*args)
        finally:
            if current[index] is run:  # (not when abandoned: another thread has the slot)
                current[index] = None

    def stop(self, runs: Sequence[JobRun]) -> None:
        """Cancel these runs' async handlers. A sync handler's thread cannot be stopped
        (Python has no way to): slots are daemon threads, so it ends with the process, which
        ``werk worker`` then ends at once. Before the shutdown (a job's timeout), a slot
        whose sync handler has not returned ``timeout_grace`` seconds later is abandoned."""
        self.loop.cancel(runs)
        if self.host.hard_stop.is_set():
            return
        for run in runs:
            if run in self.current and not (run.fn is not None and run.fn.is_async):
                timer = threading.Timer(self.host.timeout_grace, self._abandon, (run,))
                timer.name = "werk-timeout-grace"
                timer.daemon = True
                timer.start()

    def _abandon(self, run: JobRun) -> None:
        # The grace period is over: if the handler still runs, its thread leaves the slot.
        host = self.host
        with self._lock:
            if host.hard_stop.is_set() or run not in self.current:
                return
            index = self.current.index(run)
            stuck = self.threads[index].name
            self.slots[index].stop = _RETIRED  # it stops once the handler returns
            host.abandoned_threads += 1
            abandoned = host.abandoned_threads
            slot = Slot(host)
            client = host.new_client()
            self.slots[index] = slot
            self.clients[index] = client
            self.current[index] = None
            thread = threading.Thread(
                target=self._slot,
                args=(index, slot, client),
                name=f"werk-slot-{index}.{abandoned}",
                daemon=True,
            )
            self.threads[index] = thread
        log.error(
            "abandoning thread %s: jid=%s jobtype=%s is still running %.1f s after its "
            "timeout; a new thread takes its slot (%d threads abandoned so far)",
            stuck,
            run.job.jid,
            run.job.jobtype,
            host.timeout_grace,
            abandoned,
            extra={"jid": run.job.jid, "jobtype": run.job.jobtype},
        )
        thread.start()

    def io_busy(self) -> bool:
        """True while some slot waits for the server's reply."""
        return any(slot.in_io for slot in self.slots)

    def close(self) -> None:
        """After the shutdown: say END on the connections of slots that did not exit.

        A slot still waiting for a reply keeps its client (closing would wait for the
        reply); it closes it itself when the reply or the timeout comes.
        """
        for slot, client in zip(self.slots, self.clients, strict=True):
            if not slot.in_io:
                client.close()
        self.loop.stop()

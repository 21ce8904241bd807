"""A thread pool of daemon threads, so that no handler can hold the worker's process open.

``concurrent.futures.ThreadPoolExecutor`` starts non-daemon threads and registers an
``atexit`` hook that joins them: a process whose worker FAILed a still-running sync handler
back at the shutdown deadline would then live on until the handler returned, and the
handler, already due to be retried, would run to completion (so its job ran twice). Python
cannot stop a thread; what it can do is not wait for one. Threads here are daemon threads
that nobody joins at exit: the interpreter ends them when the process exits.

It is a ``ThreadPoolExecutor`` only so that ``loop.set_default_executor`` accepts it (it
demands that class since Python 3.11, and ``asyncio.to_thread`` in a handler uses the
loop's default executor); ``submit`` and ``shutdown`` are its own and the base class's
machinery stays unused.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["DaemonThreadPool"]

T = TypeVar("T")

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonThreadPool(ThreadPoolExecutor):
    """Up to ``max_workers`` daemon threads, started as work arrives and idle ones reused."""

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "") -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
        super().__init__(max_workers, thread_name_prefix)
        self._limit = max_workers
        self._prefix = thread_name_prefix or "werk-pool"
        self._items: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._started: list[threading.Thread] = []
        self._guard = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a pool thread; its future."""
        future: Future[T] = Future()
        with self._guard:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._items.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._started) < self._limit:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._prefix}-{len(self._started)}",
                    daemon=True,
                )
                self._started.append(thread)
                thread.start()
        return future

    def grow(self) -> None:
        """Allow one more thread (one of them is stuck in a handler that timed out)."""
        with self._guard:
            self._limit += 1

    def _work(self) -> None:
        items = self._items
        while True:
            item = items.get()
            if item is None:
                items.put(None)  # wake the next thread: the pool is shutting down
                return
            future, fn, args, kwargs = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                    del exc  # no reference cycle through the traceback
                else:
                    future.set_result(result)
            del future, fn, args, kwargs
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work, end idle threads; ``wait`` joins the threads (never at exit)."""
        with self._guard:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._items.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            self._items.put(None)
            threads = list(self._started)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

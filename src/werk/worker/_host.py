"""The contracts between a worker and its executor (typing only, no code).

:class:`SlotHost` is all an executor and its slots may ask of the worker that runs them;
:class:`Executor` is all the worker asks of an executor. Neither side imports the other:
the thread, asyncio and process executors know nothing of :class:`~werk.Worker`, and a test
can drive a slot with a host made of plain data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from werk.client import AsyncClient, Client
    from werk.worker._run import JobRun

__all__ = ["Executor", "SlotHost", "StopSignal"]


class StopSignal(Protocol):
    """Set once, never cleared: the moment to stop waiting and retrying (a
    :class:`threading.Event` is one)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class SlotHost(Protocol):
    """What the slots of one worker share, and how they tell the worker what happened.

    Slots call it from their own threads (or from one event loop's thread): every member is
    safe to call from any thread.
    """

    concurrency: int
    """How many slots to run."""
    where: str
    """The server, as log lines and errors name it (no password)."""
    hard_stop: threading.Event
    timeout_grace: float
    """Seconds a sync handler on a thread has, after its job timed out, to return before its
    thread is abandoned (and its slot given to a new thread)."""
    abandoned_threads: int
    """Slot threads abandoned so far, each stuck in a handler past its job's timeout."""
    fetched: Callable[[float, bool], None] | None
    """Told each FETCH's round trip and whether it brought a job (middleware's
    ``after_fetch``); None when nobody listens, and then no FETCH is timed."""
    """The shutdown deadline passed: stop waiting, stop retrying, give fetched jobs back."""

    @property
    def fetching(self) -> bool:
        """True while slots should fetch new jobs (the worker is neither quiet nor
        terminating)."""

    def fetch_line(self) -> bytes:
        """The FETCH line for the next fetch (the queues in this fetch's order)."""

    def begin(self, payload: dict[str, Any]) -> JobRun:
        """Take on a fetched job: its run, registered as in flight."""

    def finish(self, run: JobRun) -> bytes | None:
        """The ACK or FAIL line of a run that ended (``None``: a deadline reported it)."""

    def new_client(self) -> Client:
        """A new connection that says HELLO as this worker (one per slot)."""

    def new_async_client(self) -> AsyncClient:
        """The asyncio twin of :meth:`new_client`."""

    def connection_failed(self, exc: BaseException) -> None:
        """A connection to the server failed (logged once per outage)."""

    def connection_ok(self) -> None:
        """A round trip succeeded (ends an outage, if there was one)."""

    def fatal(self, exc: BaseException) -> None:
        """An error no retry can fix (a wrong password): the worker terminates."""

    def lost_report(self, line: bytes) -> None:
        """A job's ACK/FAIL could not be delivered before the hard stop."""

    def slots_exited(self) -> None:
        """The executor's last slot has exited."""


class Executor(Protocol):
    """Runs a worker's slots: how they do I/O and how they call a handler."""

    def start(self) -> None:
        """Start every slot."""

    def stop(self, runs: Sequence[JobRun]) -> None:
        """Stop these runs' handlers as far as the executor can (their jobs were already
        reported): an async handler is cancelled, a child process killed (and replaced for
        the next job); a sync handler on a thread cannot be stopped and is left to finish,
        its result ignored. The shutdown deadline stops every run still in flight; a job's
        timeout stops one (and a slot thread that does not return within ``timeout_grace``
        is abandoned: a new thread takes its slot)."""

    def io_busy(self) -> bool:
        """True while some slot waits for the server's reply."""

    def close(self) -> None:
        """After the slots exited (or the hard stop): release connections and threads."""

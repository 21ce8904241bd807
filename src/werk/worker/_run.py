"""Running one job, whoever runs it: its context, its middleware, its outcome.

A :class:`JobRun` is the one place that makes a job current (``werk.current_job()``), calls
``before_process`` and then ``after_process`` or ``on_failure`` with the duration, records
the handler's error and turns it into what a FAIL carries (errtype, message, backtrace). The
handler call itself sits in a ``with run:`` block, written by whoever calls it the way it
must be called: a slot thread, a task on an event loop, a child process, an eager push::

    with run:
        fn.func(*job.args)          # or: await ..., or: ask a child process
    run.error                       # None, or what the handler raised

The block swallows the handler's exception (it is ``run.error``), unless the run was made
with ``propagate=True`` (eager mode, where the caller gets the exception).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextvars import Token
from types import TracebackType
from typing import Any, Final, Protocol

from werk._errors import FaktoryError, JobTimeout, UnknownJobTypeError
from werk._job import Job
from werk.client._failure import MAX_BACKTRACE, format_backtrace
from werk.worker._context import CURRENT, JobContext, timeout_message
from werk.worker._middleware import Hooks

__all__ = ["Handler", "JobRun", "RemoteJobError", "backtrace_limit", "unknown_job_type"]

UNKNOWN_JOB_TYPE: Final = "UnknownJobType"
"""The errtype of the FAIL for a job whose type has no handler."""

_monotonic = time.monotonic


class Handler(Protocol):
    """What a run needs of a job function (a :class:`~werk.JobFunction` is one)."""

    @property
    def func(self) -> Callable[..., Any]: ...

    @property
    def is_async(self) -> bool: ...


class RemoteJobError(FaktoryError):
    """A job's exception as a child process reported it (process executor).

    ``errtype``, ``message`` and ``backtrace`` are what the FAIL carries; middleware's
    ``on_failure`` receives this error in the worker process.
    """

    def __init__(self, errtype: str, message: str, backtrace: Sequence[str] = ()) -> None:
        super().__init__(f"{errtype}: {message}")
        self.errtype = errtype
        self.message = message
        self.backtrace = list(backtrace)


def unknown_job_type(jobtype: str, known: Collection[str]) -> UnknownJobTypeError:
    """The error for a job type with no handler: one message wherever it is found (the
    worker, a child process, an eager push)."""
    names = ", ".join(sorted(known)) or "none"
    return UnknownJobTypeError(f"no handler registered for job type {jobtype!r} (known: {names})")


def backtrace_limit(job: Job, default: int) -> int:
    """How many backtrace lines a FAIL of ``job`` carries: its ``backtrace`` field, else the
    app's default, at most what the server keeps."""
    wanted = job.backtrace or default
    return max(0, min(wanted, MAX_BACKTRACE))


class JobRun:
    """One run of one job: from the fetched job to its outcome.

    ``fn`` is the job's handler among ``jobs``; for an unknown job type it is ``None`` and
    ``error`` is its :class:`~werk.UnknownJobTypeError` from the start (such a run is never
    entered, and calls no middleware). ``started`` is when the job was taken on; ``done``
    and ``late`` belong to the worker's ledger (the job's report was claimed; the handler
    returned after the shutdown deadline claimed it). ``deadline`` (monotonic) is when the
    job's timeout ends, if it has one; ``timed_out`` is set when the ledger FAILed the job
    at that deadline (the handler's error, a cancellation or a dead child, is then a
    :class:`~werk.JobTimeout`).
    """

    __slots__ = (
        "_hooks",
        "_propagate",
        "_token",
        "ctx",
        "deadline",
        "done",
        "error",
        "fn",
        "job",
        "late",
        "payload",
        "started",
        "timed_out",
    )

    def __init__(
        self,
        job: Job,
        jobs: Mapping[str, Handler],
        hooks: Hooks,
        ctx: JobContext | None = None,
        payload: dict[str, Any] | None = None,
        *,
        propagate: bool = False,
    ) -> None:
        self.job = job
        self.fn = fn = jobs.get(job.jobtype)
        self.ctx = JobContext(job) if ctx is None else ctx
        self.payload = payload
        self.started = _monotonic()
        self.error: BaseException | None = None
        if fn is None:
            self.error = unknown_job_type(job.jobtype, jobs)
        self.done = False
        self.late = False
        self.deadline: float | None = None
        self.timed_out = False
        self._hooks = hooks
        self._propagate = propagate
        self._token: Token[JobContext] | None = None

    def __repr__(self) -> str:
        return f"<JobRun jid={self.job.jid} jobtype={self.job.jobtype}>"

    def __enter__(self) -> JobRun:
        self._token = CURRENT.set(self.ctx)
        hook = self._hooks.before_process
        if hook is not None:
            hook(self.ctx)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        duration = _monotonic() - self.started
        token, self._token = self._token, None
        if token is not None:
            # Not contextlib.suppress: this runs for every job, and try costs nothing.
            try:  # noqa: SIM105
                CURRENT.reset(token)
            except ValueError:
                pass  # entered in another context (an asyncio task cancelled in between)
        if error is None:
            hook = self._hooks.after_process
            if hook is not None:
                hook(self.ctx, duration)
            return False
        if self.timed_out:  # cancelled, or its child killed, at the deadline
            error = JobTimeout(timeout_message(self.ctx.timeout))
        self.error = error
        failed = self._hooks.on_failure
        if failed is not None:
            failed(self.ctx, error, duration)
        return not self._propagate

    def failure(self, limit: int) -> tuple[str, str, list[str]]:
        """What the FAIL of this run carries: ``(errtype, message, backtrace)``, with at
        most ``limit`` backtrace lines (a child's error passes through as it came)."""
        error = self.error
        assert error is not None, "the run did not fail"
        if isinstance(error, RemoteJobError):
            return error.errtype, error.message, error.backtrace[:limit]
        if isinstance(error, UnknownJobTypeError):
            return UNKNOWN_JOB_TYPE, str(error), []
        errtype = type(error).__name__
        return errtype, str(error) or errtype, format_backtrace(error, limit)

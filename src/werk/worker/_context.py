"""The running job, as seen from inside its handler: :class:`JobContext` and
:func:`current_job`.

A handler takes no context argument; it asks for one. The context lives in a
:class:`contextvars.ContextVar`, so it is right on every thread, asyncio task and child
process the job runs on (:class:`~werk.worker._run.JobRun` sets it around each run).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from werk._errors import JobTimeout
from werk._job import Failure, Job

__all__ = ["TIMEOUT_FIELD", "JobContext", "current_job", "job_timeout"]

TIMEOUT_FIELD: Final = "werk_timeout"
"""The key in a job's ``custom`` hash that carries its timeout, in seconds (a positive
number): every werk worker honours it, before its own ``job_timeout`` default."""

log = logging.getLogger("werk.worker")


def job_timeout(custom: Mapping[str, Any] | None, default: float | None) -> float | None:
    """The timeout of a job whose custom hash is ``custom``: its ``werk_timeout``, else
    ``default`` (``None``: no limit). A value that is not a positive number is ignored, with
    a warning."""
    if not custom:
        return default
    value = custom.get(TIMEOUT_FIELD)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        log.warning("ignoring custom.%s=%r: not a positive number of seconds", TIMEOUT_FIELD, value)
        return default
    return float(value)


@dataclass
class JobContext:
    """One execution of one job.

    ``retry_count`` is how many times the job failed before this run (0 on the first run);
    ``failure`` is the server's record of the last failure (or ``None``). ``custom`` is the
    job's custom hash (never ``None``). ``shutting_down`` turns true when the worker is told
    to terminate: a long job may check it and stop early (it will be FAILed and retried).

    ``timeout`` is the job's time limit in seconds (or ``None``) and ``deadline`` when it
    ends, on the :func:`time.monotonic` clock; past it, ``expired`` is true and
    :meth:`check_deadline` raises :class:`~werk.JobTimeout`. (The worker FAILs the job at
    the deadline whatever the handler does; a sync handler on a thread cannot be stopped
    from outside, so it should check now and then.)

    Example::

        ctx = werk.current_job()
        if ctx.failure is not None:
            print("last time:", ctx.failure.errtype, ctx.failure.message)
    """

    job: Job
    wid: str | None = None
    _shutdown: threading.Event | None = field(default=None, repr=False)
    timeout: float | None = None
    deadline: float | None = None

    @property
    def jid(self) -> str:
        """The job id."""
        return self.job.jid

    @property
    def jobtype(self) -> str:
        """The job type (the registered name of the handler)."""
        return self.job.jobtype

    @property
    def queue(self) -> str:
        """The queue the job was fetched from."""
        return self.job.queue

    @property
    def args(self) -> list[Any]:
        """The job's arguments, after their JSON round trip."""
        return self.job.args

    @property
    def custom(self) -> dict[str, Any]:
        """The job's ``custom`` hash (``{}`` when it has none)."""
        return dict(self.job.custom or {})

    @property
    def retry_count(self) -> int:
        """How many times this job failed before this run (0 on the first run)."""
        return self.job.retry_count

    @property
    def failure(self) -> Failure | None:
        """The server's record of the previous failure, or ``None`` on the first run."""
        return self.job.failure

    @property
    def shutting_down(self) -> bool:
        """True once the worker is terminating; long jobs may stop early."""
        return self._shutdown is not None and self._shutdown.is_set()

    @property
    def expired(self) -> bool:
        """True once the job has run past its timeout (never without one)."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check_deadline(self) -> None:
        """Raise :class:`~werk.JobTimeout` if the job has run past its timeout.

        Example::

            for chunk in chunks:
                werk.current_job().check_deadline()
                upload(chunk)
        """
        if self.expired:
            raise JobTimeout(timeout_message(self.timeout))


def timeout_message(timeout: float | None) -> str:
    """What a timed-out job's FAIL says."""
    return f"job exceeded its {timeout:g} s timeout"


CURRENT: ContextVar[JobContext] = ContextVar("werk_current_job")
"""What :func:`current_job` reads: set around each run by :class:`~werk.worker._run.JobRun`."""


def current_job() -> JobContext:
    """The job being run by the calling handler.

    Raises :class:`LookupError` outside a job handler.

    Example::

        @app.job
        def charge(order_id: str) -> None:
            print(werk.current_job().jid)
    """
    try:
        return CURRENT.get()
    except LookupError:
        raise LookupError("werk.current_job() called outside a running job") from None

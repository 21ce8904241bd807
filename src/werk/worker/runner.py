"""Running one job, whatever the executor: context, middleware, outcome, ACK or FAIL line.

An executor calls :meth:`Runner.begin` with the fetched payload, runs the handler its own
way (a thread, an event loop, a child process) and calls :meth:`Runner.finish` with the
error or ``None``. ``finish`` returns the exact ACK/FAIL line to send, or ``None`` when the
job was already FAILed by the shutdown deadline, so each fetched job gets exactly one report.

Example::

    flight, fn = runner.begin(payload)
    error = None
    if fn is not None:
        try:
            fn.func(*flight.job.args)
        except Exception as exc:
            error = exc
    line = runner.finish(flight, error)     # b'ACK {"jid":...}\\r\\n' or a FAIL
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
import traceback
from collections.abc import Sequence
from contextvars import Token
from typing import TYPE_CHECKING, Any

from werk._job import Job
from werk._protocol import command_lines as commands
from werk.worker.context import JobContext, reset_current, set_current

if TYPE_CHECKING:
    from werk.worker.app import App, JobFunction

__all__ = [
    "InFlight",
    "RemoteJobError",
    "Runner",
    "UnknownJobTypeError",
    "format_backtrace",
    "run_local",
]

log = logging.getLogger("werk.worker.job")

MAX_BACKTRACE = 50  # the server keeps no more than this
_WORKER_DIR = os.path.dirname(os.path.abspath(__file__))
# Frames of the machinery between werk and the handler, left out of backtraces.
_SKIP_DIRS = (
    _WORKER_DIR,
    os.path.dirname(os.path.abspath(asyncio.__file__)),
    os.path.dirname(os.path.abspath(concurrent.futures.__file__)),
)
_monotonic = time.monotonic


class RemoteJobError(Exception):
    """A job's exception as reported by a child process (process executor).

    ``errtype``, ``message`` and ``backtrace`` are what the FAIL will carry.
    """

    def __init__(self, errtype: str, message: str, backtrace: Sequence[str] = ()) -> None:
        super().__init__(f"{errtype}: {message}")
        self.errtype = errtype
        self.message = message
        self.backtrace = list(backtrace)


class UnknownJobTypeError(Exception):
    """The fetched job's type has no registered handler (FAILed with errtype ``UnknownJobType``)."""


def _limit(job: Job, default: int) -> int:
    wanted = job.backtrace
    if wanted is None or wanted == 0:
        wanted = default
    return max(0, min(wanted, MAX_BACKTRACE))


def format_backtrace(exc: BaseException, limit: int) -> list[str]:
    """The exception's stack as lines, innermost frame first, werk's own frames left out.

    One line per frame (``File "jobs.py", line 12, in resize: raise ValueError(...)``), so
    a job's ``backtrace: N`` keeps the N frames nearest the error.

    Example::

        try:
            resize(1)
        except Exception as exc:
            format_backtrace(exc, 5)[0]    # 'File "jobs.py", line 3, in resize: raise ...'
    """
    if limit <= 0:
        return []
    if isinstance(exc, RemoteJobError):
        return exc.backtrace[:limit]
    lines: list[str] = []
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.dirname(os.path.abspath(frame.filename)) in _SKIP_DIRS:
            continue
        line = f'File "{frame.filename}", line {frame.lineno}, in {frame.name}'
        if frame.line:
            line += f": {frame.line}"
        lines.append(line)
        if len(lines) >= limit:
            break
    return lines


def describe(exc: BaseException) -> tuple[str, str]:
    """``(errtype, message)`` for a FAIL: the class name and ``str(exc)`` (or the class)."""
    if isinstance(exc, RemoteJobError):
        return exc.errtype, exc.message
    errtype = type(exc).__name__
    return errtype, str(exc) or errtype


class InFlight:
    """A fetched job between FETCH and its one and only ACK or FAIL."""

    __slots__ = ("ctx", "done", "job", "late", "payload", "started", "token")

    def __init__(self, job: Job, ctx: JobContext, payload: dict[str, Any]) -> None:
        self.job = job
        self.payload = payload
        self.ctx = ctx
        self.started = _monotonic()
        self.done = False
        self.late = False  # the handler returned after the shutdown deadline claimed the job
        self.token: Token[JobContext] | None = None


class Runner:
    """Per-worker bookkeeping of jobs in flight, and the code around every handler call."""

    def __init__(self, app: App, wid: str | None, shutdown: threading.Event) -> None:
        self.app = app
        self.wid = wid
        self.shutdown = shutdown
        self.inflight: dict[str, InFlight] = {}
        self._lock = threading.Lock()
        self._hooks = app.hooks
        self.processed = 0
        self.failed = 0

    def begin(self, payload: dict[str, Any]) -> tuple[InFlight, JobFunction[Any, Any] | None]:
        """Register a fetched job, set its context and call ``before_process``.

        Returns the handler, or ``None`` for an unknown job type (then call :meth:`finish`
        with an :class:`UnknownJobTypeError`).
        """
        job = Job.from_dict(payload)
        ctx = JobContext(job, self.wid, self.shutdown)
        flight = InFlight(job, ctx, payload)
        self.inflight[job.jid] = flight
        flight.token = set_current(ctx)
        fn = self.app.jobs.get(job.jobtype)
        if fn is not None and self._hooks.has("before_process"):
            self._hooks.call("before_process", ctx)
        return flight, fn

    def claim(self, flight: InFlight) -> bool:
        """True for the first caller only: the one that sends this job's report."""
        with self._lock:
            if flight.done:
                return False
            flight.done = True
            self.inflight.pop(flight.job.jid, None)
            return True

    def finish(self, flight: InFlight, error: BaseException | None) -> bytes | None:
        """Call the after hooks, log, and return the ACK/FAIL line (``None`` if already sent)."""
        duration = _monotonic() - flight.started
        job = flight.job
        ctx = flight.ctx
        if flight.token is not None:
            # ValueError: set in another context (asyncio); nothing to undo here.
            with contextlib.suppress(ValueError):
                reset_current(flight.token)
            flight.token = None
        if error is None:
            self._hooks.call("after_process", ctx, duration)
            if not self.claim(flight):
                flight.late = True
                return None
            self.processed += 1
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "done jid=%s jobtype=%s duration=%.3fs",
                    job.jid,
                    job.jobtype,
                    duration,
                    extra={"jid": job.jid, "jobtype": job.jobtype, "duration": duration},
                )
            return commands.ack(job.jid)
        if not isinstance(error, UnknownJobTypeError):
            self._hooks.call("on_failure", ctx, error, duration)
        if not self.claim(flight):
            return None
        self.failed += 1
        return self.fail_line(job, error, duration)

    def fail_line(self, job: Job, error: BaseException, duration: float) -> bytes:
        """The FAIL line for ``job`` (also logs the failure)."""
        if isinstance(error, UnknownJobTypeError):
            errtype, message = "UnknownJobType", str(error)
            backtrace: list[str] = []
        else:
            errtype, message = describe(error)
            backtrace = format_backtrace(error, _limit(job, self.app.default_backtrace))
        log.warning(
            "failed jid=%s jobtype=%s duration=%.3fs %s: %s",
            job.jid,
            job.jobtype,
            duration,
            errtype,
            message,
            extra={
                "jid": job.jid,
                "jobtype": job.jobtype,
                "duration": duration,
                "errtype": errtype,
            },
        )
        return commands.fail(job.jid, errtype, message, backtrace)

    def refuse(self, payload: dict[str, Any]) -> bytes:
        """The FAIL line for a job fetched after the shutdown deadline (it never started)."""
        job = Job.from_dict(payload)
        log.warning(
            "giving back jid=%s jobtype=%s: fetched after the shutdown deadline",
            job.jid,
            job.jobtype,
            extra={"jid": job.jid, "jobtype": job.jobtype},
        )
        return commands.fail(job.jid, "Shutdown", "worker stopped before the job could start")

    def unknown(self, job: Job) -> UnknownJobTypeError:
        """The error for a job type with no handler."""
        known = ", ".join(sorted(self.app.jobs)) or "none"
        return UnknownJobTypeError(
            f"No handler registered for job type {job.jobtype!r} (known: {known})"
        )

    def abandon(self, errtype: str, message: str) -> list[tuple[InFlight, bytes]]:
        """Claim every job still in flight and build its FAIL line (shutdown deadline)."""
        out: list[tuple[InFlight, bytes]] = []
        for flight in list(self.inflight.values()):
            if self.claim(flight):
                self.failed += 1
                job = flight.job
                log.warning(
                    "failing unfinished jid=%s jobtype=%s after %.1fs: %s",
                    job.jid,
                    job.jobtype,
                    _monotonic() - flight.started,
                    message,
                    extra={"jid": job.jid, "jobtype": job.jobtype},
                )
                out.append((flight, commands.fail(job.jid, errtype, message)))
        return out

    def settle(self, abandoned: list[tuple[InFlight, bytes]]) -> tuple[list[bytes], int]:
        """The reports of the jobs :meth:`abandon` claimed, as they stand now, and how many
        are still FAILs: a handler that has returned successfully since gets its ACK
        instead (it did its work; a retry would do it twice)."""
        lines: list[bytes] = []
        failed = 0
        for flight, fail in abandoned:
            if flight.late:
                self.failed -= 1
                self.processed += 1
                job = flight.job
                log.info(
                    "jid=%s jobtype=%s finished after the shutdown deadline: acknowledging it",
                    job.jid,
                    job.jobtype,
                    extra={"jid": job.jid, "jobtype": job.jobtype},
                )
                lines.append(commands.ack(job.jid))
            else:
                lines.append(fail)
                failed += 1
        return lines, failed


def run_local(app: App, fn: JobFunction[Any, Any], job: Job) -> Any:
    """Run ``fn`` for ``job`` in this thread with its context and middleware (eager mode).

    For an async handler this returns the coroutine; the caller awaits it.
    """
    ctx = JobContext(job)
    hooks = app.hooks
    started = _monotonic()

    def before() -> Token[JobContext]:
        token = set_current(ctx)
        hooks.call("before_process", ctx)
        return token

    def after(token: Token[JobContext], error: BaseException | None) -> None:
        duration = _monotonic() - started
        if error is None:
            hooks.call("after_process", ctx, duration)
        else:
            hooks.call("on_failure", ctx, error, duration)
        reset_current(token)

    if fn.is_async:

        async def run_async() -> Any:
            token = before()
            try:
                result = await fn.func(*job.args)
            except BaseException as exc:
                after(token, exc)
                raise
            after(token, None)
            return result

        return run_async()
    token = before()
    try:
        result = fn.func(*job.args)
    except BaseException as exc:
        after(token, exc)
        raise
    after(token, None)
    return result

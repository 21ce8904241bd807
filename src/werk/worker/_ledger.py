"""The jobs a worker has fetched and not yet reported, and the one report each one gets.

A fetched job is registered by :meth:`Ledger.begin` and leaves by exactly one *claim*: its
handler finished (:meth:`Ledger.finish` gives the ACK or FAIL line), or a deadline took it
(:meth:`Ledger.abandon` at the shutdown, :meth:`Ledger.expire` at a job's own timeout, give
a FAIL line while the handler may still run). Whoever claims
first sends the report; the other side gets ``None``. A handler that returns successfully
after a deadline claimed its job is marked ``late``, and :meth:`Ledger.settle` turns that
job's FAIL into an ACK if it has not gone out yet: a retry would do the work twice.

The counts (``processed``, ``failed``) and the log line of every job are kept here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werk._job import Job
from werk._protocol import command_lines
from werk.client._failure import fail_request
from werk.worker._context import JobContext, job_timeout, timeout_message
from werk.worker._middleware import Hooks
from werk.worker._run import JobRun, backtrace_limit

if TYPE_CHECKING:
    from werk.client import Client

__all__ = ["Ledger"]

log = logging.getLogger("werk.worker.job")


def _note(level: int, what: str, job: Job, detail: str, *args: object, **extra: object) -> None:
    # "<what> jid=... jobtype=...<detail>", with the job's fields for structured logging.
    log.log(
        level,
        what + " jid=%s jobtype=%s" + detail,
        job.jid,
        job.jobtype,
        *args,
        extra={"jid": job.jid, "jobtype": job.jobtype, "queue": job.queue, **extra},
    )


class Ledger:
    """Jobs in flight for one worker, keyed by jid (``inflight``), and what became of them.

    ``jobs`` are the app's handlers, ``hooks`` its middleware, ``default_backtrace`` its
    backtrace length; ``wid`` and ``stopping`` (set when the worker begins to terminate)
    go into every job's context; ``job_timeout`` is the time limit of a job whose
    ``custom.werk_timeout`` does not set one (``None``: no limit).
    """

    def __init__(
        self,
        jobs: dict[str, Any],
        hooks: Hooks,
        *,
        wid: str | None = None,
        stopping: threading.Event | None = None,
        default_backtrace: int = 30,
        job_timeout: float | None = None,
    ) -> None:
        self.inflight: dict[str, JobRun] = {}
        self.processed = 0
        self.failed = 0
        self.unknown: dict[str, int] = {}
        """Jobs of a type with no handler (FAILed without running), by queue."""
        self.default_backtrace = default_backtrace
        self.job_timeout = job_timeout
        self._jobs = jobs
        self._hooks = hooks
        self._wid = wid
        self._stopping = stopping
        self._lock = threading.Lock()
        self.connect: Callable[[], Client] | None = None
        """What each job's context uses to reach the server (set by the worker)."""

    def begin(self, payload: dict[str, Any]) -> JobRun:
        """Take on a fetched job: its run, registered as in flight (an unknown job type's
        run has its error already)."""
        job = Job.from_dict(payload)
        ctx = JobContext(job, self._wid, self._stopping, connect=self.connect)
        run = JobRun(job, self._jobs, self._hooks, ctx, payload)
        timeout = job_timeout(job.custom, self.job_timeout)
        if timeout is not None:
            ctx.timeout = timeout
            ctx.deadline = run.deadline = run.started + timeout
        self.inflight[job.jid] = run
        if run.error is not None:  # (rare) no middleware sees these: count them here
            with self._lock:
                self.unknown[job.queue] = self.unknown.get(job.queue, 0) + 1
        return run

    def claim(self, run: JobRun) -> bool:
        """True for the first caller only: the one that sends this job's report."""
        with self._lock:
            if run.done:
                return False
            run.done = True
            self.inflight.pop(run.job.jid, None)
            return True

    def finish(self, run: JobRun) -> bytes | None:
        """The ACK or FAIL line for a run that ended (``None`` if a deadline took it)."""
        job = run.job
        if run.error is None:
            if not self.claim(run):
                run.late = True
                return None
            self.processed += 1
            if log.isEnabledFor(logging.INFO):
                duration = time.monotonic() - run.started
                _note(logging.INFO, "done", job, " duration=%.3fs", duration, duration=duration)
            return command_lines.ack(job.jid)
        if not self.claim(run):
            return None
        self.failed += 1
        duration = time.monotonic() - run.started
        errtype, message, backtrace = run.failure(backtrace_limit(job, self.default_backtrace))
        _note(
            logging.WARNING,
            "failed",
            job,
            " duration=%.3fs %s: %s",
            duration,
            errtype,
            message,
            duration=duration,
            errtype=errtype,
        )
        return fail_request(job.jid, message, errtype, backtrace).line

    def abandon(self, errtype: str, message: str) -> list[tuple[JobRun, bytes]]:
        """Claim every job still in flight, each with its FAIL line (a deadline passed)."""
        out: list[tuple[JobRun, bytes]] = []
        for run in list(self.inflight.values()):
            if self.claim(run):
                self.failed += 1
                job = run.job
                elapsed = time.monotonic() - run.started
                _note(
                    logging.WARNING, "failing unfinished", job, " after %.1fs: %s", elapsed, message
                )
                out.append((run, command_lines.fail(job.jid, errtype, message)))
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline among the jobs in flight (monotonic), or ``None``."""
        deadlines = [d for run in list(self.inflight.values()) if (d := run.deadline) is not None]
        return min(deadlines) if deadlines else None

    def expire(self, now: float) -> list[tuple[JobRun, bytes]]:
        """Claim every job in flight whose deadline is past ``now`` (monotonic), each with
        its ``JobTimeout`` FAIL line; the runs are marked ``timed_out``."""
        out: list[tuple[JobRun, bytes]] = []
        for run in list(self.inflight.values()):
            deadline = run.deadline
            if deadline is None or deadline > now or not self.claim(run):
                continue
            run.timed_out = True
            self.failed += 1
            job = run.job
            message = timeout_message(run.ctx.timeout)
            _note(
                logging.WARNING,
                "timed out",
                job,
                " after %.3fs: %s",
                now - run.started,
                message,
                errtype="JobTimeout",
            )
            out.append((run, fail_request(job.jid, message, "JobTimeout", []).line))
        return out

    def settle(self, abandoned: list[tuple[JobRun, bytes]]) -> tuple[list[bytes], int]:
        """The reports of the jobs :meth:`abandon` claimed, as they stand now, and how many
        are still FAILs: a handler that has returned successfully since gets its ACK."""
        lines: list[bytes] = []
        failed = 0
        for run, fail in abandoned:
            if run.late:
                self.failed -= 1
                self.processed += 1
                job = run.job
                _note(
                    logging.INFO, "acknowledging", job, ": it returned after the shutdown deadline"
                )
                lines.append(command_lines.ack(job.jid))
            else:
                lines.append(fail)
                failed += 1
        return lines, failed

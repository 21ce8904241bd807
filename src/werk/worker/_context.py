"""The running job, as seen from inside its handler: :class:`JobContext` and
:func:`current_job`.

A handler takes no context argument; it asks for one. The context lives in a
:class:`contextvars.ContextVar`, so it is right on every thread, asyncio task and child
process the job runs on (:class:`~werk.worker._run.JobRun` sets it around each run).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final

from werk._errors import ConfigurationError, JobTimeout, NotInBatchError
from werk._job import Failure, Job
from werk.client import AsyncBatch
from werk.worker._offload import OffloadedClient

if TYPE_CHECKING:
    from werk.client import Batch, Client

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

    Batches and tracking (Faktory Enterprise, and werk's server): :attr:`bid` is the job's
    batch, :meth:`reopen_batch` and :meth:`child_batch` add work to it, :meth:`track`
    reports progress (``areopen_batch``, ``achild_batch`` and ``atrack`` in ``async def``
    jobs); they talk on the worker's connection (:meth:`client`).

    Example::

        ctx = werk.current_job()
        if ctx.failure is not None:
            print("last time:", ctx.failure.errtype, ctx.failure.message)
        if ctx.bid is not None:
            with ctx.child_batch(success=werk.Job("StepDone")) as step:
                step.push("Step", 1)
        ctx.track(100, "done")
    """

    job: Job
    wid: str | None = None
    _shutdown: threading.Event | None = field(default=None, repr=False)
    timeout: float | None = None
    deadline: float | None = None
    connect: Callable[[], Client] | None = field(default=None, repr=False)
    """How the job's code reaches the server (batches, tracking): the worker's connection
    for the running thread; ``None`` where there is none."""

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

    # -- Faktory Enterprise: batches and tracking -------------------------------------------

    @property
    def bid(self) -> str | None:
        """The job's batch: its ``custom.bid`` when it is a member, the ``custom._bid`` of
        the batch whose callback it is, else ``None``."""
        custom = self.job.custom
        if not custom:
            return None
        bid = custom.get("bid") or custom.get("_bid")
        return bid if isinstance(bid, str) and bid else None

    @property
    def parent_bid(self) -> str | None:
        """For a callback of a child batch, the parent batch's bid (``custom._pbid``)."""
        custom = self.job.custom
        pbid = custom.get("_pbid") if custom else None
        return pbid if isinstance(pbid, str) and pbid else None

    @property
    def callback(self) -> str | None:
        """``"complete"`` or ``"success"`` when the job is a batch callback, else ``None``."""
        custom = self.job.custom
        kind = custom.get("_cb") if custom else None
        return kind if isinstance(kind, str) and kind else None

    @property
    def tracked(self) -> bool:
        """True when the job was pushed with ``custom.track`` (a non-zero number or true)."""
        custom = self.job.custom
        value = custom.get("track") if custom else None
        return value is True or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0
        )

    def client(self) -> Client:
        """The connection the job's code should use to talk to the server: the worker's
        own, one per thread (in the process executor, the child process's own).

        Raises :class:`~werk.ConfigurationError` where the job runs without a worker.

        Example::

            werk.current_job().client().queue_pause("exports")
        """
        if self.connect is None:
            raise ConfigurationError(
                "this job context has no connection to the server (it is not run by a worker)"
            )
        return self.connect()

    def _own_bid(self, what: str) -> str:
        bid = self.bid
        if bid is None:
            raise NotInBatchError(
                f"{what}: job {self.jid} ({self.jobtype}) is not in a batch "
                "(no custom.bid or custom._bid)"
            )
        return bid

    def reopen_batch(self, bid: str | None = None) -> Batch:
        """The job's batch (or batch ``bid``, e.g. :attr:`parent_bid` in a child's callback),
        reopened to add members: ``with`` sends BATCH OPEN, a clean exit commits it again.

        While the reopened batch is open its callbacks cannot fire: this job is one of its
        pending members (a callback is not, so reopen from a callback before it returns).
        Raises :class:`~werk.NotInBatchError` when the job has no batch and ``bid`` is None.

        Example::

            @app.job
            def crawl(url: str) -> None:
                with werk.current_job().reopen_batch() as batch:
                    for link in links(url):
                        crawl.push(link)           # joins the same batch
        """
        return self.client().reopen_batch(bid or self._own_bid("reopen_batch()"))

    def child_batch(
        self,
        *,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
    ) -> Batch:
        """A new batch whose parent is the job's batch (see :meth:`werk.Client.batch`):
        the parent's callbacks wait for the child's.

        Raises :class:`~werk.NotInBatchError` when the job has no batch.

        Example::

            @app.job
            def import_user(user_id: int) -> None:
                with werk.current_job().child_batch(success=werk.Job("UserImported")) as b:
                    for photo in photos(user_id):
                        b.push("ImportPhoto", photo)
        """
        return self.client().batch(
            description=description,
            success=success,
            complete=complete,
            parent_bid=self._own_bid("child_batch()"),
        )

    def areopen_batch(self, bid: str | None = None) -> AsyncBatch:
        """For ``async def`` jobs: :meth:`reopen_batch` as an :class:`~werk.AsyncBatch`
        (``async with``, ``await batch.push(...)``); the round trips run on a thread, so the
        event loop never waits on the network.

        Example::

            @app.job
            async def crawl(url: str) -> None:
                async with werk.current_job().areopen_batch() as batch:
                    await batch.push("Crawl", next_url)
        """
        target = bid or self._own_bid("areopen_batch()")
        return AsyncBatch(self._offloaded(), bid=target)  # type: ignore[arg-type]

    def achild_batch(
        self,
        *,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
    ) -> AsyncBatch:
        """For ``async def`` jobs: :meth:`child_batch` as an :class:`~werk.AsyncBatch`
        (see :meth:`areopen_batch`).

        Example::

            async with werk.current_job().achild_batch(success=werk.Job("Done")) as batch:
                await batch.push("Step", 1)
        """
        return AsyncBatch(
            self._offloaded(),  # type: ignore[arg-type] # the commands AsyncBatch sends
            description=description,
            success=success,
            complete=complete,
            parent_bid=self._own_bid("achild_batch()"),
        )

    async def atrack(
        self,
        percent: int | None,
        desc: str | None = None,
        *,
        reserve_until: datetime | timedelta | str | None = None,
    ) -> None:
        """For ``async def`` jobs: :meth:`track`, its round trip on a thread.

        Example::

            await werk.current_job().atrack(50, "halfway")
        """
        if not self.tracked and reserve_until is None:
            log.debug("job %s is not tracked (no custom.track): progress not sent", self.jid)
            return
        await asyncio.to_thread(self.track, percent, desc, reserve_until=reserve_until)

    def _offloaded(self) -> OffloadedClient:
        self.client()  # fail here, in the caller, when there is no connection
        return OffloadedClient(self.client)

    def track(
        self,
        percent: int | None,
        desc: str | None = None,
        *,
        reserve_until: datetime | timedelta | str | None = None,
    ) -> None:
        """Report the job's progress (TRACK SET): ``percent`` from 0 to 100 and a short
        ``desc``; ``reserve_until`` (an aware datetime, a timedelta from now, or an RFC3339
        string) extends the job's reservation so a long job is not handed out again.

        For a job that is not tracked (pushed without ``custom={"track": 1}``) the progress
        is not sent (a debug log says so); a ``reserve_until`` is still sent, alone, since
        extending a reservation concerns every long job.

        Example::

            @app.job(custom={"track": 1})
            def export(day: str) -> None:
                for n, part in enumerate(parts, 1):
                    upload(part)
                    werk.current_job().track(100 * n // len(parts), f"part {n}",
                                             reserve_until=timedelta(minutes=30))
        """
        if isinstance(reserve_until, timedelta):
            reserve_until = datetime.now(timezone.utc) + reserve_until
        if not self.tracked:
            log.debug("job %s is not tracked (no custom.track): progress not sent", self.jid)
            if reserve_until is None:
                return
            percent = desc = None
        self.client().track_set(
            self.jid, percent=percent, description=desc, reserve_until=reserve_until
        )

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

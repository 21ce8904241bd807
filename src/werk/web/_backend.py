"""What the web UI needs from a server: the :class:`WebBackend` protocol and its value types.

The pages never touch storage or connections themselves. They read snapshots (plain frozen
dataclasses) and ask for changes through a handful of verbs, each of which is the server's own
operation: set actions are MUTATE, queue actions are QUEUE PAUSE/RESUME/REMOVE, worker signals
are what the next BEAT reply reports. :mod:`werk.web._server_backend` implements this protocol on
top of werk's embedded server; any other object with the same methods works too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "BATCH_FILTERS",
    "SET_NAMES",
    "BatchCallback",
    "BatchDetail",
    "BatchFilter",
    "BatchJob",
    "BatchSummary",
    "CronInfo",
    "DayCount",
    "EnqueueRefused",
    "MutateCmd",
    "QueueInfo",
    "Reservation",
    "SetEntry",
    "SetName",
    "Signal",
    "Stats",
    "ThrottleInfo",
    "Track",
    "UniqueLock",
    "WebBackend",
    "WorkerInfo",
    "batch_status",
]

SetName = Literal["scheduled", "retries", "dead"]
"""The three sorted sets MUTATE can target."""

SET_NAMES: tuple[SetName, ...] = ("scheduled", "retries", "dead")

MutateCmd = Literal["requeue", "discard", "kill"]
"""MUTATE commands the pages use: run now (back to its queue), delete, move to dead."""

Signal = Literal["quiet", "terminate"]
"""Worker states an operator can impose; the worker learns them from its next BEAT reply."""


@dataclass(frozen=True)
class Stats:
    """Counters and sizes for the dashboard, as INFO reports them (times in Unix seconds)."""

    processed: int
    failures: int
    enqueued: int
    working: int
    scheduled: int
    retries: int
    dead: int
    workers: int
    connections: int
    command_count: int
    version: str
    uptime: float
    now: float
    memory_mb: int = 0
    queues: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueInfo:
    """One known queue: its length, the age in seconds of the job fetched next, paused or not."""

    name: str
    size: int
    latency: float
    paused: bool


@dataclass(frozen=True)
class SetEntry:
    """One job in a sorted set and its moment (Unix seconds): for ``scheduled`` when it runs,
    for ``retries`` when it is retried, for ``dead`` when it died."""

    when: float
    job: dict[str, Any]

    @property
    def jid(self) -> str:
        """The job's id, which is how the pages name an entry (MUTATE filters by jid)."""
        return str(self.job.get("jid", ""))


@dataclass(frozen=True)
class WorkerInfo:
    """A registered worker process (``wid``) as the Busy page shows it."""

    wid: str
    hostname: str
    pid: int
    labels: tuple[str, ...]
    started_at: float
    last_heartbeat: float
    state: str  # "running", "quiet" or "terminate"
    rss_kb: int
    connections: int
    busy: int


@dataclass(frozen=True)
class Reservation:
    """A job in progress: fetched by ``wid`` at ``reserved_at``, given back at ``expires_at``."""

    wid: str
    job: dict[str, Any]
    reserved_at: float
    expires_at: float


@dataclass(frozen=True)
class DayCount:
    """Processed and failed counts of one UTC day (``day`` as ``YYYY-MM-DD``)."""

    day: str
    processed: int
    failed: int


@dataclass(frozen=True)
class ThrottleInfo:
    """One configured throttle (``[throttles]``) and its use now."""

    queue: str
    limit: int
    per_worker: bool  # ``worker = N``; else ``concurrency = N``
    timeout: int
    in_use: int  # slots taken (across every worker)
    waiting: int  # jobs waiting in the queue

    @property
    def kind(self) -> str:
        """``"4 concurrent"`` or ``"2 per worker"``."""
        return f"{self.limit} per worker" if self.per_worker else f"{self.limit} concurrent"


@dataclass(frozen=True)
class UniqueLock:
    """The lock a unique job's (jobtype, args, queue) holds now."""

    jid: str  # the job holding it
    until: float  # when it ends at the latest


@dataclass(frozen=True)
class CronInfo:
    """A cron entry (``[[cron]]``) as the Cron page shows it (times in Unix seconds, UTC).

    ``id`` names the entry (a hash of its schedule and job); ``history`` holds the last
    pushed jobs as (time, jid), newest first; ``last_run`` is the last tick that fired."""

    id: str
    schedule: str
    jobtype: str
    queue: str
    args: list[Any]
    custom: dict[str, Any]
    origin: str
    next_run: float
    last_run: float | None
    history: tuple[tuple[float, str], ...] = ()


BatchFilter = Literal["all", "running", "failed", "succeeded"]
"""Which batches the Batches page lists: every one; those with members not yet succeeded
(or not committed); those with a failed member not yet succeeded; those whose every member
succeeded."""

BATCH_FILTERS: tuple[BatchFilter, ...] = ("all", "running", "failed", "succeeded")

_CALLBACK_STATES = {"": "pending", "1": "enqueued", "2": "succeeded"}


def batch_status(committed: bool, pending: int, failed: int) -> str:
    """``open`` (not committed), ``running``, ``complete`` (every member ran, some failed
    and wait for a retry or died) or ``succeeded`` (every member succeeded).

    Example::

        >>> batch_status(True, 3, 3)
        'complete'
    """
    if not committed:
        return "open"
    if pending == 0:
        return "succeeded"
    return "complete" if pending == failed else "running"


@dataclass(frozen=True)
class BatchSummary:
    """A batch as BATCH STATUS tells it, plus what only the server knows (committed, which
    callbacks it has, how many child batches). ``complete_st``/``success_st`` are the wire
    states: ``""`` not enqueued, ``"1"`` enqueued, ``"2"`` succeeded."""

    bid: str
    parent_bid: str
    description: str
    created_at: str  # RFC 3339
    committed: bool
    total: int
    pending: int
    failed: int
    complete_st: str
    success_st: str
    has_complete: bool
    has_success: bool
    children: int

    @property
    def done(self) -> int:
        """Members that succeeded."""
        return max(self.total - self.pending, 0)

    @property
    def percent(self) -> int:
        """Succeeded members in percent, rounded down (100 only when all succeeded)."""
        return 100 * self.done // self.total if self.total else (100 if self.committed else 0)

    @property
    def status(self) -> str:
        """:func:`batch_status` of this batch."""
        return batch_status(self.committed, self.pending, self.failed)

    def callback_state(self, kind: str) -> str:
        """``none`` (no such callback), ``pending``, ``enqueued`` or ``succeeded``; ``kind``
        is ``complete`` or ``success``."""
        has, st = (
            (self.has_complete, self.complete_st)
            if kind == "complete"
            else (self.has_success, self.success_st)
        )
        return _CALLBACK_STATES.get(st, st) if has else "none"


@dataclass(frozen=True)
class BatchCallback:
    """A batch's callback job as given at BATCH NEW (``kind``: complete or success)."""

    kind: str
    jid: str
    jobtype: str
    queue: str
    state: str  # as BatchSummary.callback_state


@dataclass(frozen=True)
class BatchDetail:
    """One batch's page: the batch, its child batches, its callbacks, and the members known
    to have failed (``failed_jids``, at most the first few of ``batch.failed``, with where
    each is now: ``retries``, ``dead``, ``busy`` or ``""`` when not found there)."""

    batch: BatchSummary
    children: tuple[BatchSummary, ...]
    callbacks: tuple[BatchCallback, ...]
    failed_jids: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class BatchJob:
    """A member job of a batch found in the server: ``where`` is ``busy``, ``queue`` (then
    ``queue`` names it), ``scheduled``, ``retries`` or ``dead``."""

    where: str
    queue: str
    jid: str
    job: dict[str, Any]


@dataclass(frozen=True)
class Track:
    """A tracked job's progress (TRACK GET): its state, the last percent and description
    its job reported (0 and "" when none), and when its record last changed."""

    jid: str
    state: str  # enqueued, working, success, failed, dead, unknown
    percent: int
    desc: str
    updated_at: str  # RFC 3339, "" when never


class EnqueueRefused(Exception):
    """The server refused the job "enqueue now" pushed (the message is its reply)."""


class WebBackend(Protocol):
    """The server as the web UI sees it. Every method runs on the server's event loop.

    Pages are 0-based ``offset`` + ``count`` windows; they return ``(total, items)``.
    """

    def now(self) -> float:
        """The server clock (Unix seconds); relative times on the pages are measured from it."""
        ...

    async def stats(self) -> Stats:
        """Totals and sizes, as INFO."""
        ...

    async def queues(self) -> list[QueueInfo]:
        """Every known queue, sorted by name."""
        ...

    async def queue_jobs(
        self, name: str, offset: int, count: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """A window of a queue's jobs in fetch order (next to be fetched first)."""
        ...

    async def set_entries(
        self, target: SetName, offset: int, count: int
    ) -> tuple[int, list[SetEntry]]:
        """A window of a sorted set in score order (soonest first)."""
        ...

    async def set_entry(self, target: SetName, jid: str) -> SetEntry | None:
        """The entry of ``target`` holding job ``jid``, or None."""
        ...

    async def mutate(self, cmd: MutateCmd, target: SetName, jids: Sequence[str] | None) -> None:
        """MUTATE ``cmd`` on ``target``, filtered by ``jids``; None means every entry."""
        ...

    async def pause_queues(self, names: Sequence[str]) -> None:
        """QUEUE PAUSE: FETCH skips these queues until resumed."""
        ...

    async def resume_queues(self, names: Sequence[str]) -> None:
        """QUEUE RESUME."""
        ...

    async def remove_queues(self, names: Sequence[str]) -> None:
        """QUEUE REMOVE: the queues and all their jobs are gone."""
        ...

    async def delete_queue_jobs(self, name: str, jids: Sequence[str]) -> int:
        """Delete the listed jobs from queue ``name``; returns how many were removed."""
        ...

    async def workers(self) -> list[WorkerInfo]:
        """Every registered worker, sorted by wid."""
        ...

    async def reservations(self) -> list[Reservation]:
        """Every job in progress, oldest reservation first."""
        ...

    async def signal_workers(self, wid: str | None, signal: Signal) -> None:
        """Move worker ``wid`` (None: every worker) to ``signal``; forward-only, as BEAT."""
        ...

    async def history(self, days: int) -> list[DayCount]:
        """Processed/failed per UTC day for the last ``days`` days, oldest first."""
        ...

    async def throttles(self) -> list[ThrottleInfo]:
        """Every configured throttle, by queue name."""
        ...

    async def expired_jobs(self) -> int:
        """How many expired jobs FETCH has dropped (``custom.expires_at``)."""
        ...

    async def unique_lock(self, job: dict[str, Any]) -> UniqueLock | None:
        """The live lock of a unique job's key (None: not held, or not a unique job)."""
        ...

    async def cron_entries(self) -> list[CronInfo]:
        """Every cron entry in configuration order (none without cron)."""
        ...

    def features(self) -> frozenset[str]:
        """The optional server features present: ``batches``, ``tracking``. A backend
        without this method has none (the Batches tab is not shown)."""
        ...

    async def batches(
        self, offset: int, count: int, which: BatchFilter = "all"
    ) -> tuple[int, list[BatchSummary]]:
        """A window of the batches chosen by ``which``, newest first."""
        ...

    async def batch(self, bid: str, failed_limit: int = 100) -> BatchDetail | None:
        """One batch with its children, callbacks and (up to ``failed_limit``) failed
        members; None when there is no such batch."""
        ...

    async def batch_jobs(self, bid: str, limit: int = 100) -> tuple[int, list[BatchJob]]:
        """The member jobs of batch ``bid`` still in the server (queues, sets, in
        progress), found by their ``custom.bid``: how many, and the first ``limit``."""
        ...

    async def tracks(self, jids: Sequence[str]) -> dict[str, Track]:
        """The progress records of those ``jids`` that have one."""
        ...

    async def cron_enqueue(self, entry_id: str) -> str:
        """Push one job of cron entry ``entry_id`` now (its schedule and last run do not
        change); the new jid. KeyError for an unknown entry, :class:`EnqueueRefused` when
        the server refuses the job."""
        ...

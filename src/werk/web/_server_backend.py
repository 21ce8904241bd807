"""The :class:`~werk.web._backend.WebBackend` of werk's server, and :func:`backend_for`.

Every page reads the manager's in-memory state (the same objects the command port serves)
and every change goes through the server's own operations, so an action in the browser
is exactly the command a client could have sent:

* set actions build a MUTATE :class:`~werk.server._arguments.MutateCommand` filtered by
  jid and run its :class:`~werk.server._sweep.Sweep`;
* queue actions are QUEUE PAUSE / RESUME / REMOVE (``Manager.pause`` and friends);
* quiet/terminate change the worker's state in the registry, which the next BEAT reply
  reports, as with Faktory's Busy page.

Everything runs on the server's event loop and never blocks it for long: a page that has
to look at a whole set (a window of it in time order, one job by jid, "retry all") does
it :data:`CHUNK` entries per loop turn, so the command port answers in between.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections.abc import AsyncIterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from werk._errors import ConfigurationError
from werk.server import _admin as admin
from werk.server._arguments import MutateCommand
from werk.server._cron import Cron
from werk.server._embedded import EmbeddedServer
from werk.server._expiring import ExpiringJobs
from werk.server._extension import Extension
from werk.server._info_reply import FAKTORY_VERSION, used_memory_mb
from werk.server._manager import DEAD_TTL, Manager
from werk.server._sets import QueueItem, SortedSet
from werk.server._sets import SetEntry as StoredSetEntry
from werk.server._sweep import Sweep
from werk.server._throttles import Throttles
from werk.server._unique import UniqueJobs
from werk.web import _batch_backend
from werk.web._backend import (
    BatchDetail,
    BatchFilter,
    BatchJob,
    BatchSummary,
    CronInfo,
    DayCount,
    EnqueueRefused,
    MutateCmd,
    QueueInfo,
    Reservation,
    SetEntry,
    SetName,
    Signal,
    Stats,
    ThrottleInfo,
    Track,
    UniqueLock,
    WebBackend,
    WorkerInfo,
)

__all__ = ["CHUNK", "ServerBackend", "backend_for"]

T = TypeVar("T")
E = TypeVar("E", bound=Extension)

CHUNK = 20_000
"""Set entries a page looks at per event-loop turn (a few milliseconds)."""


def _job(payload: bytes) -> dict[str, Any]:
    # Stored payloads are canonical JSON written by the server; a damaged one is still shown.
    try:
        value = json.loads(payload)
    except ValueError:
        return {"jid": "?", "jobtype": "?", "args": [payload.decode("utf-8", "replace")]}
    return value if isinstance(value, dict) else {"jid": "?", "jobtype": "?", "args": [value]}


def _order(entry: StoredSetEntry) -> tuple[float, int]:
    return (entry.score, entry.id)


async def _chunks(items: list[T]) -> AsyncIterator[list[T]]:
    """``items`` (a snapshot: the set may change meanwhile) a chunk per loop turn."""
    for start in range(0, len(items), CHUNK):
        if start:
            await asyncio.sleep(0)
        yield items[start : start + CHUNK]


def backend_for(server_or_backend: Any) -> WebBackend:
    """The :class:`WebBackend` of a server (an EmbeddedServer, a Server or a Manager), or
    the object itself if it is already a backend."""
    needed = ("stats", "queues", "set_entries", "mutate", "workers", "signal_workers")
    if all(callable(getattr(server_or_backend, name, None)) for name in needed):
        backend: WebBackend = server_or_backend
        return backend
    return ServerBackend(server_or_backend)


class ServerBackend:
    """The web UI's view of a server (see the module docstring).

    ``server`` is a started :class:`~werk.server.EmbeddedServer`, the server object it
    runs (with ``manager`` and, for INFO's server section, ``stats``) or a bare
    :class:`~werk.server._manager.Manager`.
    """

    def __init__(self, server: Any) -> None:
        if isinstance(server, EmbeddedServer):
            server = server.server
        if not isinstance(getattr(server, "manager", server), Manager):
            raise ConfigurationError(
                f"the web UI needs a started werk server (EmbeddedServer), not {server!r}"
            )
        self._server = server

    @property
    def manager(self) -> Manager:
        """The server's manager, looked up on each use (the server may replace it)."""
        manager: Manager = getattr(self._server, "manager", self._server)
        return manager

    async def _committed(self) -> None:
        # Answer the browser only once the change is durable, as the command port does.
        pending = self.manager.storage.barrier()
        if pending is not None:
            await pending

    def now(self) -> float:
        """The server clock."""
        return self.manager.clock.now()

    async def stats(self) -> Stats:
        """The same numbers INFO reports."""
        m = self.manager
        sizes = m.queue_sizes()
        ss = getattr(self._server, "stats", None)
        now = self.now()
        started = float(getattr(ss, "started", now))
        return Stats(
            processed=m.counters.get("processed", 0),
            failures=m.counters.get("failures", 0),
            enqueued=sum(sizes.values()),
            working=len(m.working),
            scheduled=len(m.scheduled),
            retries=len(m.retries),
            dead=len(m.dead),
            workers=len(m.workers),
            connections=int(getattr(ss, "connections", 0)),
            command_count=int(getattr(ss, "commands", 0)),
            version=FAKTORY_VERSION,
            uptime=max(now - started, 0.0),
            now=now,
            memory_mb=used_memory_mb(),
            queues=sizes,
        )

    async def queues(self) -> list[QueueInfo]:
        """Every known queue with size, latency (QUEUE LATENCY) and paused flag."""
        m = self.manager
        names = sorted(m.queues)
        latency = admin.latency(m, names)
        return [
            QueueInfo(name, len(m.queues[name]), float(latency.get(name, 0)), name in m.paused)
            for name in names
        ]

    async def queue_jobs(
        self, name: str, offset: int, count: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """A window of one queue, next job first."""
        q = self.manager.queues.get(name)
        if q is None:
            return 0, []
        return len(q), [_job(item.payload) for item in islice(q, offset, offset + count)]

    def _set(self, target: SetName) -> SortedSet:
        m = self.manager
        return {"scheduled": m.scheduled, "retries": m.retries, "dead": m.dead}[target]

    def _entry(self, target: SetName, stored: StoredSetEntry) -> SetEntry:
        # The dead set is scored by purge deadline; the page wants the time of death.
        when = stored.score - DEAD_TTL if target == "dead" else stored.score
        return SetEntry(when=when, job=_job(stored.payload))

    async def set_entries(
        self, target: SetName, offset: int, count: int
    ) -> tuple[int, list[SetEntry]]:
        """A window of a set: soonest first (Dead: most recent death first)."""
        s = self._set(target)
        # Only the first offset+count in order are needed: O(n log k), not a full sort,
        # over a snapshot taken a chunk per loop turn.
        pick = heapq.nlargest if target == "dead" else heapq.nsmallest
        want = offset + count
        window: list[StoredSetEntry] = []
        async for chunk in _chunks(list(s.entries.values())):
            window = pick(want, [*window, *pick(want, chunk, key=_order)], key=_order)
        return len(s), [self._entry(target, e) for e in window[offset:]]

    async def set_entry(self, target: SetName, jid: str) -> SetEntry | None:
        """The entry holding ``jid`` (the latest, should a jid appear twice)."""
        found: list[StoredSetEntry] = []
        async for chunk in _chunks(list(self._set(target).entries.values())):
            found += [e for e in chunk if e.jid == jid]
        if not found:
            return None
        return self._entry(target, max(found, key=_order))

    async def mutate(self, cmd: MutateCmd, target: SetName, jids: Sequence[str] | None) -> None:
        """Exactly ``MUTATE {"cmd":cmd,"target":target,"filter":{"jids":[...]}}``."""
        op = MutateCommand()
        op.cmd = cmd
        op.target = target
        if jids is not None:
            op.has_filter = True
            op.jids = list(jids)
            if not op.jids:
                return  # an empty jid list would mean "everything" to MUTATE
        sweep = Sweep(self.manager, op)
        while not sweep.step():
            await asyncio.sleep(0)  # a slice per loop turn, as on the command port
        await self._committed()

    async def pause_queues(self, names: Sequence[str]) -> None:
        """QUEUE PAUSE."""
        for name in names:
            admin.pause(self.manager, name)
        await self._committed()

    async def resume_queues(self, names: Sequence[str]) -> None:
        """QUEUE RESUME."""
        for name in names:
            admin.resume(self.manager, name)
        await self._committed()

    async def remove_queues(self, names: Sequence[str]) -> None:
        """QUEUE REMOVE."""
        for name in names:
            admin.remove_queue(self.manager, name)
        await self._committed()

    async def delete_queue_jobs(self, name: str, jids: Sequence[str]) -> int:
        """Delete jobs from a queue by jid (Faktory's queue page can; no command does)."""
        m = self.manager
        q = m.queues.get(name)
        wanted = set(jids)
        if not q or not wanted:
            return 0
        doomed: list[QueueItem] = []
        async for chunk in _chunks(list(q)):
            doomed += [item for item in chunk if item.jid in wanted]
        removed = 0
        for item in doomed:
            if removed:
                await asyncio.sleep(0)  # one deletion (one scan of the queue) per loop turn
            removed += admin.delete_queue_item(m, name, item)
        if removed:
            await self._committed()
        return removed

    async def workers(self) -> list[WorkerInfo]:
        """Every registered worker with its jobs in progress counted."""
        m = self.manager
        busy: dict[str, int] = {}
        for res in m.reservations.values():
            busy[res.wid] = busy.get(res.wid, 0) + 1
        out = []
        for wid in sorted(m.workers.workers):
            w = m.workers.workers[wid]
            out.append(
                WorkerInfo(
                    wid=wid,
                    hostname=w.hostname,
                    pid=w.pid,
                    labels=tuple(w.labels),
                    started_at=w.started_at,
                    last_heartbeat=w.last_beat,
                    state=w.state or "running",
                    rss_kb=w.rss_kb,
                    connections=len(w.connections),
                    busy=busy.get(wid, 0),
                )
            )
        return out

    async def reservations(self) -> list[Reservation]:
        """Jobs in progress, oldest reservation first."""
        items = sorted(self.manager.reservations.values(), key=lambda r: (r.since, r.id))
        return [Reservation(r.wid, _job(r.payload), r.since, r.score) for r in items]

    async def signal_workers(self, wid: str | None, signal: Signal) -> None:
        """Quiet or terminate one worker or all; the next BEAT reply carries it."""
        self.manager.workers.signal("all" if wid is None else wid, signal)

    async def history(self, days: int) -> list[DayCount]:
        """Daily counters (``processed:<day>``, ``failures:<day>``), oldest day first."""
        counters = self.manager.counters
        now = self.now()
        out = []
        for back in range(days - 1, -1, -1):
            day = time.strftime("%Y-%m-%d", time.localtime(now - back * 86400))
            out.append(
                DayCount(
                    day,
                    counters.get(f"processed:{day}", 0),
                    counters.get(f"failures:{day}", 0),
                )
            )
        return out

    # -- Enterprise features (each None-safe: a server may run without the extension) ------

    def _extension(self, kind: type[E]) -> E | None:
        hooks = self.manager.hooks
        if hooks is None:
            return None
        return next((ext for ext in hooks.all if isinstance(ext, kind)), None)

    async def throttles(self) -> list[ThrottleInfo]:
        """Each throttle's limit, slots in use and queue size."""
        ext = self._extension(Throttles)
        if ext is None:
            return []
        queues = self.manager.queues
        return [
            ThrottleInfo(
                t.queue,
                t.limit,
                t.per_worker,
                t.timeout,
                used,
                len(queues.get(t.queue) or ()),
            )
            for t, used in ext.usage()
        ]

    async def expired_jobs(self) -> int:
        """The expiring-jobs extension's count."""
        ext = self._extension(ExpiringJobs)
        return 0 if ext is None else ext.expired

    async def unique_lock(self, job: dict[str, Any]) -> UniqueLock | None:
        """The lock held for ``job``'s (jobtype, args, queue), if live."""
        ext = self._extension(UniqueJobs)
        custom = job.get("custom")
        if ext is None or not isinstance(custom, dict) or "unique_for" not in custom:
            return None
        try:
            lock = ext.holder({**job, "queue": job.get("queue") or "default"})
        except (KeyError, TypeError, ValueError):  # a damaged payload: nothing to show
            return None
        return None if lock is None else UniqueLock(lock.jid, lock.until)

    def _cron(self) -> Cron | None:
        hooks = self.manager.hooks
        extensions = hooks.all if hooks is not None else ()
        return next((ext for ext in extensions if isinstance(ext, Cron)), None)

    async def cron_entries(self) -> list[CronInfo]:
        """The cron extension's entries, with their next and last runs."""
        cron = self._cron()
        if cron is None:
            return []
        now = self.now()
        out = []
        for entry in cron.entries:
            state = cron.state[entry.id]
            out.append(
                CronInfo(
                    id=entry.id,
                    schedule=entry.schedule.text,
                    jobtype=entry.jobtype,
                    queue=entry.queue,
                    args=list(entry.job.get("args", [])),
                    custom=dict(entry.job.get("custom", {})),
                    origin=entry.origin,
                    next_run=entry.schedule.next_after(now),
                    last_run=state.last,
                    history=tuple(state.history),
                )
            )
        return out

    async def cron_enqueue(self, entry_id: str) -> str:
        """The entry's job, pushed now through the whole PUSH pipeline."""
        cron = self._cron()
        if cron is None:
            raise KeyError(entry_id)
        try:
            jid = cron.enqueue_now(entry_id)
        except ValueError as exc:
            raise EnqueueRefused(str(exc)) from None
        await self._committed()
        return jid

    def features(self) -> frozenset[str]:
        """``batches`` and ``tracking`` when the server runs those extensions."""
        return _batch_backend.features(self.manager)

    async def batches(
        self, offset: int, count: int, which: BatchFilter = "all"
    ) -> tuple[int, list[BatchSummary]]:
        """A window of the batches, newest first."""
        return await _batch_backend.batch_window(self.manager, offset, count, which)

    async def batch(self, bid: str, failed_limit: int = 100) -> BatchDetail | None:
        """One batch with its children, callbacks and known failed members."""
        return await _batch_backend.batch_detail(self.manager, bid, failed_limit)

    async def batch_jobs(self, bid: str, limit: int = 100) -> tuple[int, list[BatchJob]]:
        """A batch's member jobs still in the server, by their ``custom.bid``."""
        return await _batch_backend.batch_jobs(self.manager, bid, limit)

    async def tracks(self, jids: Sequence[str]) -> dict[str, Track]:
        """Tracking records by jid."""
        return _batch_backend.tracks(self.manager, jids)

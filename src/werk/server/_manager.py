"""The server's semantics, free of sockets: queues, reservations, retries, the sets.

:class:`Manager` holds the hot state in memory and writes every change through to its
storage. It never blocks and never reads the wall clock: time comes from the injected
clock, so a test can push a job, advance a manual clock by an hour and run the periodic
tasks (:class:`~werk.server._periodic.PeriodicTasks`) to see the retry come back.

Example::

    >>> from werk.server._clock import ManualClock
    >>> from werk.server._storage import MemoryStorage
    >>> m = Manager(MemoryStorage(), ManualClock(1_700_000_000))
    >>> m.push_bytes(b'{"jid":"jid-00000001","jobtype":"T","args":[]}') is None
    True
    >>> m.fetch(["default"], wid="").jid
    'jid-00000001'
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from werk._job import QUEUE_NAME_RE
from werk._protocol.resp import JOB_NOT_FOUND
from werk._protocol.timefmt import epoch_to_string
from werk.server._clock import Clock
from werk.server._gojson import GoJSONError, go_dumps, go_quote
from werk.server._gotime import parse_rfc3339
from werk.server._payload import JobCodec, Payload
from werk.server._sets import QueueItem, Reservation, SetEntry, SortedSet
from werk.server._stamps import Stamps
from werk.server._storage import DEAD, QUEUE, RETRIES, SCHEDULED, WORKING, Storage
from werk.server._waiters import Waiter, WaitingFetches
from werk.server._workers import WorkerRegistry

__all__ = ["BAD_QUEUE", "DEAD_TTL", "DEFAULT_RETRY", "Manager", "backoff"]

log = logging.getLogger("werk.server")

DEFAULT_RETRY = 25
DEAD_TTL = 180 * 24 * 3600.0
BAD_QUEUE = "queue names must match \\A[a-zA-Z0-9._-]+\\z"


def _truncate(text: str, limit: int) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "werk-go-replace")


def backoff(retry_count: int, rand30: int) -> int:
    """Faktory's retry delay in seconds: ``c**4 + 15 + rand(30) * (c + 1)``."""
    return retry_count**4 + 15 + rand30 * (retry_count + 1)


def _drop(container: object) -> None:
    """Free a big container at once (a manager without a server to spread the work)."""


class Manager:
    """Pure Faktory semantics over a storage and a clock (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        *,
        rand30: Callable[[], int] | None = None,
    ) -> None:
        import random

        self.storage = storage
        self.clock = clock
        self.codec = JobCodec()
        self._rand30 = rand30 or (lambda: random.randrange(30))
        self.workers = WorkerRegistry()
        self.waiting = WaitingFetches()
        self._stamps = Stamps(clock)
        self.now_string = self._stamps.now_string
        # Containers a command dropped whole (a removed queue, a cleared set): freeing a
        # million jobs takes a quarter of a second, so a server sets this to something that
        # frees them a slice at a time between other clients' commands.
        self.release: Callable[[object], None] = _drop
        self.load()

    # -- boot ------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)build the in-memory state from the storage."""
        self.queues: dict[str, deque[QueueItem]] = {}
        self.paused: set[str] = set()
        self.scheduled = SortedSet()
        self.retries = SortedSet()
        self.dead = SortedSet()
        self.working = SortedSet()
        self.reservations: dict[str, Reservation] = {}
        snap = self.storage.load()
        self.counters: dict[str, int] = dict(snap.counters)
        for name, paused in snap.queues.items():
            self.queues[name] = deque()
            if paused:
                self.paused.add(name)
        last = 0
        sets = {SCHEDULED: self.scheduled, RETRIES: self.retries, DEAD: self.dead}
        for e in snap.entries:
            last = max(last, e.id)
            if e.kind == QUEUE:
                reserve_for = self._reserve_for_of(e.payload)
                self.queues.setdefault(e.name, deque()).append(
                    QueueItem(e.id, e.jid, reserve_for, e.payload)
                )
            elif e.kind == WORKING:
                res = Reservation(e.id, e.score, e.jid, e.payload, e.name, e.since)
                self.working.add(res)
                self.reservations[e.jid] = res
            else:
                sets[e.kind].add(SetEntry(e.id, e.score, e.jid, e.payload))
        self._next_id = last + 1

    def _reserve_for_of(self, payload: bytes) -> int:
        try:
            value = self.codec.loads(payload).get("reserve_for") or 0
        except (GoJSONError, AttributeError):
            return 0
        return int(value)

    def _id(self) -> int:
        eid = self._next_id
        self._next_id = eid + 1
        return eid

    # -- counters --------------------------------------------------------------------

    def _count(self, failed: bool) -> None:
        counters, storage = self.counters, self.storage
        for name in self._stamps.counters(failed):
            counters[name] = counters.get(name, 0) + 1
            storage.counter_add(name, 1)

    # -- PUSH ------------------------------------------------------------------------

    def push_bytes(self, data: bytes) -> str | None:
        """PUSH: decode, validate and store one job; the error text or None."""
        try:
            job = self.codec.decode_job(data)
        except GoJSONError as exc:
            return f"invalid JSON: {exc}"
        return self.push(job)

    def push_bulk_bytes(self, data: bytes) -> bytes:
        """PUSHB: the reply body (``{jid: error}``); raises GoJSONError for a bad array."""
        jobs = self.codec.decode_jobs(data)
        stamp = self.now_string()
        errors: dict[str, str] = {}
        for job in jobs:
            if not job.get("created_at"):
                job["created_at"] = stamp
            error = self.push(job)
            if error is not None:
                errors[job.get("jid") or ""] = error
        return go_dumps(errors) if errors else b"{}"

    def push(self, job: Payload) -> str | None:
        """Validate and store a decoded job (Faktory's order of checks); error text or None.

        ``retry`` absent or null means 25 for this job only (the real server's default
        leaks from one PUSH to the next; werk's does not).
        """
        jid = job.get("jid") or ""
        if len(jid) < 8 and len(jid.encode("utf-8", "surrogatepass")) < 8:
            return "jobs must have a reasonable jid parameter"
        if not job.get("jobtype"):
            return "jobs must have a jobtype parameter"
        if job.get("args") is None:
            return "jobs must have an args parameter"
        reserve_for = job.get("reserve_for") or 0
        if reserve_for > 86400:
            return "jobs cannot be reserved for more than one day"
        if job.get("retry") is None:
            job["retry"] = DEFAULT_RETRY
        stamp = None
        if not job.get("created_at"):
            job["created_at"] = stamp = self.now_string()
        if not job.get("queue"):
            job["queue"] = "default"
        at = job.get("at")
        if at:
            try:
                when = parse_rfc3339(at)
            except ValueError as exc:
                return f"invalid timestamp for 'at': {go_quote(at)}: {exc}"
            if when > self.clock.now():
                payload = self.codec.encode(job)
                self._set_add(self.scheduled, SCHEDULED, when, jid, payload)
                return None
        return self._enqueue(job, stamp)

    def _enqueue(self, job: Payload, stamp: str | None = None) -> str | None:
        queue = job["queue"]
        if queue not in self.queues and not QUEUE_NAME_RE.match(queue):
            return f"cannot get {go_quote(queue)} queue: {BAD_QUEUE}"
        job["enqueued_at"] = stamp or self.now_string()
        payload = self.codec.encode(job)
        self._queue_append(queue, job["jid"], job.get("reserve_for") or 0, payload)
        return None

    def _queue(self, name: str) -> deque[QueueItem]:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = deque()
            self.storage.queue_known(name, False)
        return q

    def _queue_append(self, queue: str, jid: str, reserve_for: int, payload: bytes) -> None:
        q = self._queue(queue)
        waiter = self.waiting.first(queue)
        if waiter is not None:
            # Hand the job straight to the longest-blocked FETCH (Redis BRPOP). Its id is
            # the queue position it would have had, should it have to go back (put_back).
            item = QueueItem(self._id(), jid, reserve_for, payload)
            waiter.deliver(self._reserve(item, waiter.wid, queue))
            return
        eid = self._id()
        q.append(QueueItem(eid, jid, reserve_for, payload))
        self.storage.queue_push(eid, queue, jid, payload)

    def _set_add(self, s: SortedSet, kind: int, score: float, jid: str, payload: bytes) -> None:
        eid = self._id()
        s.add(SetEntry(eid, score, jid, payload))
        self.storage.entry_add(eid, kind, "", score, jid, payload, 0.0)

    # -- FETCH -----------------------------------------------------------------------

    def fetch(self, queues: Iterable[str], wid: str) -> Reservation | None:
        """Pop the first job of the first non-empty, unpaused queue and reserve it."""
        paused, all_queues = self.paused, self.queues
        for name in queues:
            q = all_queues.get(name)
            if q and name not in paused:
                item = q.popleft()
                self.storage.entry_remove(item.id)
                return self._reserve(item, wid, name)
        return None

    def active_queues(self, queues: Sequence[str]) -> list[str]:
        """The requested queues that are not paused."""
        return [q for q in queues if q not in self.paused]

    def add_waiter(self, waiter: Waiter) -> None:
        """Block a FETCH on its queues until a job arrives (or the caller gives up)."""
        self.waiting.add(waiter)

    def cancel_waiter(self, waiter: Waiter) -> None:
        """The FETCH timed out or its connection closed."""
        self.waiting.remove(waiter)

    def _reserve(self, item: QueueItem, wid: str, queue: str) -> Reservation:
        timeout = item.reserve_for or 1800
        timeout = 60 if timeout < 60 else 86400 if timeout > 86400 else timeout
        now = self.clock.now()
        eid = self._id()
        res = Reservation(eid, now + timeout, item.jid, item.payload, wid, now)
        res.queue = queue
        res.item = item
        self.working.add(res)
        self.reservations[item.jid] = res
        self.storage.entry_add(eid, WORKING, wid, res.score, item.jid, item.payload, now)
        return res

    def put_back(self, res: Reservation) -> bool:
        """Undo a FETCH whose reply never reached its client (the connection was gone):
        end the reservation and put the job back at the head of its queue, or straight to
        another blocked FETCH, as if never fetched (no retry counted, payload unchanged).
        False if the reservation already ended or was made before a restart.
        """
        item = res.item
        if item is None or self.reservations.get(res.jid) is not res:
            return False
        del self.reservations[res.jid]
        if self.working.remove(res.id) is not None:
            self.storage.entry_remove(res.id)
        queue = res.queue
        q = self._queue(queue)
        waiter = self.waiting.first(queue)
        if waiter is not None:
            waiter.deliver(self._reserve(item, waiter.wid, queue))
            return True
        # Its old id: stored queues load in id order, so it is first again after a restart.
        q.appendleft(item)
        self.storage.queue_push(item.id, queue, item.jid, item.payload)
        return True

    # -- ACK / FAIL ------------------------------------------------------------------

    def ack(self, jid: str) -> bool:
        """End a reservation successfully; False (and no effect) if there is none."""
        res = self.reservations.pop(jid, None)
        if res is None:
            return False
        if self.working.remove(res.id) is not None:
            self.storage.entry_remove(res.id)
        self._count(failed=False)
        return True

    def fail(self, jid: str, errtype: str, message: str, backtrace: list[str] | None) -> str | None:
        """FAIL a reserved job (Faktory's cleansing and retry rules); error text or None."""
        if not jid:
            return "missing JID"
        errtype = _truncate(errtype.strip(), 100) or "unknown"
        message = _truncate(message.strip(), 1000) or "unknown"
        res = self.reservations.pop(jid, None)
        if res is None:
            return f"{JOB_NOT_FOUND} {jid}"
        if self.working.remove(res.id) is None:
            return None  # lost the race with the expiry reaper
        self.storage.entry_remove(res.id)
        self._process_failure(res, errtype, message, (backtrace or [])[:50])
        return None

    def _process_failure(
        self, res: Reservation, errtype: str, message: str, backtrace: list[str] | None
    ) -> None:
        self._count(failed=True)
        job: Payload = self.codec.loads(res.payload)
        retry = job.get("retry")
        if retry is None:
            retry = job["retry"] = DEFAULT_RETRY
        failure = job.get("failure")
        if failure is not None:
            failure["retry_count"] = (failure.get("retry_count") or 0) + 1
            if (failure.get("remaining") or 0) > 0:
                failure["remaining"] -= 1
        else:
            failure = job["failure"] = {
                "retry_count": 0,
                "remaining": retry,
                "failed_at": self.now_string(),
            }
        failure["message"], failure["errtype"], failure["backtrace"] = message, errtype, backtrace
        if retry == 0:
            return
        now = self.clock.now()
        count = failure["retry_count"]
        if count < retry:
            when = now + backoff(count, self._rand30())
            failure["next_at"] = epoch_to_string(when)
            self._set_add(self.retries, RETRIES, when, res.jid, self.codec.encode(job))
        else:
            self._set_add(self.dead, DEAD, now + DEAD_TTL, res.jid, self.codec.encode(job))

    # -- queues ----------------------------------------------------------------------

    def pause(self, name: str) -> None:
        """QUEUE PAUSE one known queue (unknown names are ignored, as in Faktory)."""
        if name in self.queues:
            self.paused.add(name)
            self.storage.queue_known(name, True)

    def resume(self, name: str) -> None:
        """QUEUE RESUME one known queue."""
        if name in self.queues:
            self.paused.discard(name)
            self.storage.queue_known(name, False)

    def remove_queue(self, name: str) -> None:
        """QUEUE REMOVE: drop the queue, its jobs and its name."""
        q = self.queues.pop(name, None)
        if q is not None:
            self.storage.queue_forget(name)
            self.release(q)
        self.paused.discard(name)

    def delete_queue_jobs(self, name: str, jids: Iterable[str]) -> int:
        """Delete the jobs with these jids from one queue (the web UI's queue page; no
        command does it); the others keep their order. The number deleted.

        Like every change, the deletions are durable once the storage has committed them
        (``storage.barrier()``).
        """
        q = self.queues.get(name)
        wanted = set(jids)
        if not q or not wanted:
            return 0
        doomed = [item for item in q if item.jid in wanted]
        return sum(self.delete_queue_item(name, item) for item in doomed)

    def delete_queue_item(self, name: str, item: QueueItem) -> bool:
        """Delete one job from a queue if it is still there; whether it was. One scan of
        the queue in C, stopping where the job is (the web UI deletes a page at a time)."""
        q = self.queues.get(name)
        if not q:
            return False
        try:
            q.remove(item)  # ids are unique: equal means the same job
        except ValueError:
            return False
        self.storage.entry_remove(item.id)
        return True

    def latency(self, names: Sequence[str]) -> dict[str, float]:
        """QUEUE LATENCY: seconds since the oldest job of each queue was enqueued."""
        out: dict[str, float] = {}
        now = self.clock.now()
        for name in names:
            q = self.queues.get(name)
            if not q:
                out[name] = 0
                continue
            job = self.codec.loads(q[0].payload)
            out[name] = now - parse_rfc3339(job.get("enqueued_at") or "")
        return out

    def flush(self) -> None:
        """FLUSH: erase jobs, sets, counters, stored queue names and pauses. Queue names,
        pauses, reservations and workers stay in memory until restart, as on the real
        server."""
        for q in self.queues.values():
            if q:
                self.release(q.copy())  # then clear() only unlinks: nothing is freed yet
                q.clear()
        for s in (self.scheduled, self.retries, self.dead, self.working):
            self.release(s.clear())
        self.counters.clear()
        self.storage.flush_all()

    # -- statistics ------------------------------------------------------------------

    def queue_sizes(self) -> dict[str, int]:
        """Every known queue and its length, sorted by name."""
        return {name: len(self.queues[name]) for name in sorted(self.queues)}

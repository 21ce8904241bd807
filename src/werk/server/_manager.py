"""The server's semantics, free of sockets: queues, reservations, retries, the sets.

:class:`Manager` holds the hot state in memory and writes every change through to its
storage. It never blocks and never reads the wall clock: time comes from the injected
clock, so a test can push a job, advance a manual clock by an hour and run the periodic
tasks (:class:`~werk.server._periodic.PeriodicTasks`) to see the retry come back.

Extensions (:mod:`werk.server._extension`, which says how to write one, the order of the
hooks and what is durable) are passed in as a list; the manager is their
:class:`~werk.server._extension.Host`. Without any, the per-job path is what it always
was; with some, a job without ``custom`` (from a queue no extension guards) costs a flag
test.

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
from collections.abc import Callable, Iterable, Sequence

from werk._job import QUEUE_NAME_RE
from werk._protocol.resp import JOB_NOT_FOUND
from werk._protocol.timefmt import epoch_to_string
from werk.server._clock import Clock
from werk.server._confd import Config
from werk.server._extension import DEAD as TO_DEAD
from werk.server._extension import DISCARD, FAILED, PUT_BACK, RETRY, Extension
from werk.server._gojson import GoJSONError, go_dumps, go_quote
from werk.server._gotime import parse_rfc3339
from werk.server._hooks import Extensions
from werk.server._payload import JobCodec, Payload
from werk.server._sets import QueueItem, Reservation
from werk.server._stamps import Stamps
from werk.server._state import JobState
from werk.server._storage import DEAD, RETRIES, SCHEDULED, WORKING, Storage
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


# Only a job with a non-empty ``custom`` object has this in its canonical encoding (a
# nested object of args may too: such a job is passed on and the extensions find nothing).
CUSTOM_MARK = b'"custom":{"'
encode = JobCodec.encode


def _drop(container: object) -> None:
    """Free a big container at once (a manager without a server to spread the work)."""


class Manager(JobState):
    """Pure Faktory semantics over a storage and a clock (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        *,
        rand30: Callable[[], int] | None = None,
        extensions: Sequence[Extension] = (),
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
        # None without extensions: every hook site tests this (or a job's flag) first.
        self.hooks: Extensions | None = None
        if extensions:
            self.hooks = Extensions(extensions, self)
            self.workers.on_gone = self.hooks.worker_gone
        self.load()

    # -- boot ------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)build the in-memory state from the storage (and the extensions' from their
        records)."""
        snap = self.storage.load()
        self.restore(snap, hooked=self.hooks is not None)
        if self.hooks is not None:
            self.hooks.load(snap.records)

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
        get = job.get
        jid = get("jid") or ""
        if len(jid) < 8 and len(jid.encode("utf-8", "surrogatepass")) < 8:
            return "jobs must have a reasonable jid parameter"
        if not get("jobtype"):
            return "jobs must have a jobtype parameter"
        if get("args") is None:
            return "jobs must have an args parameter"
        reserve_for = get("reserve_for") or 0
        if reserve_for > 86400:
            return "jobs cannot be reserved for more than one day"
        if get("retry") is None:
            job["retry"] = DEFAULT_RETRY
        stamp = None
        if not get("created_at"):
            job["created_at"] = stamp = self.now_string()
        if not get("queue"):
            job["queue"] = "default"
        at = get("at")
        if not at and (self.hooks is None or not get("custom")):
            return self.enqueue(job, stamp)  # the usual PUSH: no schedule, no extension
        when = 0.0
        scheduled = False
        if at:
            try:
                when = parse_rfc3339(at)
            except ValueError as exc:
                return f"invalid timestamp for 'at': {go_quote(at)}: {exc}"
            scheduled = when > self.clock.now()
        hooks = self.hooks
        if hooks is not None and job.get("custom"):
            # The queue is checked first, so that what the extensions accept is stored.
            error = None if scheduled else self._bad_queue(job["queue"])
            if error is None:
                error = hooks.check_push(job)
            if error is not None:
                return error
            hooks.pushed(job)
        if scheduled:
            payload = self.codec.encode(job)
            self.add_to_set(self.scheduled, SCHEDULED, when, jid, payload)
            return None
        return self.enqueue(job, stamp)

    def _bad_queue(self, queue: str) -> str | None:
        # What enqueue() refuses, asked before the extensions accept a job.
        if queue not in self.queues and not QUEUE_NAME_RE.match(queue):
            return f"cannot get {go_quote(queue)} queue: {BAD_QUEUE}"
        return None

    def enqueue(self, job: Payload, stamp: str | None = None) -> str | None:
        """Put a job in its queue (a PUSH, or a scheduled job or retry come due, which
        skip the extensions' push hooks); the error text of a bad queue name or None."""
        queue = job["queue"]
        if queue not in self.queues and not QUEUE_NAME_RE.match(queue):
            return f"cannot get {go_quote(queue)} queue: {BAD_QUEUE}"
        job["enqueued_at"] = stamp or self.now_string()
        get = job.get
        self.append_to_queue(
            queue, job["jid"], get("reserve_for") or 0, encode(job), bool(get("custom"))
        )
        return None

    def append_to_queue(
        self, queue: str, jid: str, reserve_for: int, payload: bytes, custom: bool
    ) -> None:
        """Add an encoded job at the end of ``queue``, or hand it straight to the
        longest-blocked FETCH waiting for it (Redis BRPOP)."""
        q = self.queues.get(queue)
        if q is None:
            q = self.queue_of(queue)
        eid = self._next_id
        self._next_id = eid + 1
        if queue not in self.waiting.lines:  # nobody waits: the usual case, no item
            q.add(eid, jid, reserve_for, payload, custom)
            self.storage.queue_push(eid, queue, jid, payload)
            return
        # Its id is the queue position it would have had, should it have to go back
        # (put_back) after being handed straight to a blocked FETCH.
        item = QueueItem(eid, jid, reserve_for, payload, custom)
        if self.hooks is None:
            waiter = self.waiting.first(queue)
            if waiter is not None:
                waiter.deliver(self._reserve(item, waiter.wid, queue))
                return
        elif self._hand_over(queue, item) is not False:
            return
        q.append(item)
        self.storage.queue_push(item.id, queue, jid, payload)

    # -- FETCH -----------------------------------------------------------------------

    def fetch(self, queues: Iterable[str], wid: str) -> Reservation | None:
        """Pop the first job of the first non-empty, unpaused queue and reserve it."""
        if self.hooks is not None:
            return self._fetch_with_hooks(queues, wid, self.hooks)
        paused, all_queues = self.paused, self.queues
        for name in queues:
            q = all_queues.get(name)
            if q and name not in paused:
                item = q.popleft()
                self.storage.entry_remove(item.id)
                return self._reserve(item, wid, name)
        return None

    def _fetch_with_hooks(
        self, queues: Iterable[str], wid: str, hooks: Extensions
    ) -> Reservation | None:
        paused, all_queues, guards = self.paused, self.queues, hooks.guards
        for name in queues:
            q = all_queues.get(name)
            if not q or name in paused:
                continue
            guarding = guards.get(name)
            if guarding and not hooks.admit(guarding, name, wid):
                continue  # throttled: the next queue may still deliver
            while q:
                item = q.popleft()
                self.storage.entry_remove(item.id)
                job = None
                if item.custom and hooks.inspect_fetch:
                    job = self.codec.loads(item.payload)
                    if hooks.fetch(job, name, wid) is not None:
                        continue  # discarded: the same FETCH takes the next job
                return self._reserve(item, wid, name, job)
        return None

    def _hand_over(self, queue: str, item: QueueItem) -> bool | None:
        """With extensions: give ``item`` (out of its queue) to the longest-blocked FETCH
        the queue's guards admit. True if handed over, None if an extension discarded
        it, False if no FETCH may take it (the caller keeps it)."""
        hooks = self.hooks
        assert hooks is not None
        waiter = self.waiting.peek(queue, hooks.admits(queue))
        if waiter is None:
            return False
        job = None
        if item.custom and hooks.inspect_fetch:
            job = self.codec.loads(item.payload)
            if hooks.fetch(job, queue, waiter.wid) is not None:
                return None
        self.waiting.remove(waiter)
        waiter.deliver(self._reserve(item, waiter.wid, queue, job))
        return True

    def wake(self, queue: str) -> None:
        """Hand the jobs waiting in ``queue`` to blocked FETCHes that may take them now
        (an extension freed a throttle slot)."""
        if self.hooks is None or queue in self.paused:
            return
        admits = self.hooks.admits(queue)
        q = self.queues.get(queue)
        while q and self.waiting.peek(queue, admits) is not None:
            item = q.popleft()
            self.storage.entry_remove(item.id)
            self._hand_over(queue, item)

    def active_queues(self, queues: Sequence[str]) -> list[str]:
        """The requested queues that are not paused."""
        return [q for q in queues if q not in self.paused]

    def add_waiter(self, waiter: Waiter) -> None:
        """Block a FETCH on its queues until a job arrives (or the caller gives up)."""
        self.waiting.add(waiter)

    def cancel_waiter(self, waiter: Waiter) -> None:
        """The FETCH timed out or its connection closed."""
        self.waiting.remove(waiter)

    def _reserve(
        self, item: QueueItem, wid: str, queue: str, job: Payload | None = None
    ) -> Reservation:
        timeout = item.reserve_for or 1800
        timeout = 60 if timeout < 60 else 86400 if timeout > 86400 else timeout
        now = self.clock.now()
        eid = self.next_id()
        res = Reservation(eid, now + timeout, item.jid, item.payload, wid, now)
        res.queue = queue
        res.item = item
        self.working.add(res)
        self.reservations[item.jid] = res
        self.storage.entry_add(eid, WORKING, wid, res.score, item.jid, item.payload, now)
        hooks = self.hooks
        if hooks is not None and (item.custom or queue in hooks.guards):
            res.custom = item.custom
            res.hooked = True
            if job is None and item.custom and (hooks.job_at_reserve or hooks.job_at_ack):
                job = self.codec.loads(item.payload)
            res.job = job
            hooks.reserved(res, job)
        return res

    def extend_reservation(self, jid: str, until: float) -> bool:
        """Move the expiry of ``jid``'s reservation to ``until``, at most a day from now
        and never earlier than it is (TRACK's ``reserve_until``); stored like the
        reservation. Whether it moved."""
        res = self.reservations.get(jid)
        until = min(until, self.clock.now() + 86400)
        if res is None or until <= res.score or self.working.remove(res.id) is None:
            return False
        self.storage.entry_remove(res.id)
        res.id = self.next_id()  # a new entry: its old id may still sit in the expiry heap
        res.score = until
        self.working.add(res)
        self.storage.entry_add(res.id, WORKING, res.wid, until, jid, res.payload, res.since)
        return True

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
        q = self.queue_of(queue)
        if self.hooks is None:
            waiter = self.waiting.first(queue)
            if waiter is not None:
                waiter.deliver(self._reserve(item, waiter.wid, queue))
                return True
        else:
            if res.hooked:
                self.hooks.released(res, PUT_BACK)
            if self._hand_over(queue, item) is not False:
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
        if res.hooked:  # only ever set with extensions
            assert self.hooks is not None
            job = res.job
            if job is None and res.custom and self.hooks.job_at_ack:  # loaded at boot
                job = self.codec.loads(res.payload)
            self.hooks.acked(res, job)
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
        self.process_failure(res, errtype, message, (backtrace or [])[:50])
        return None

    def process_failure(
        self,
        res: Reservation,
        errtype: str,
        message: str,
        backtrace: list[str] | None,
        reason: str = FAILED,
    ) -> None:
        """What FAIL (``reason`` :data:`FAILED`) and reservation expiry (:data:`EXPIRED`)
        do to an ended reservation: count it, update the job's ``failure``, then retry,
        kill or drop the job."""
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
        count = failure["retry_count"]
        outcome = DISCARD if retry == 0 else RETRY if count < retry else TO_DEAD
        if res.hooked:  # only ever set with extensions
            assert self.hooks is not None
            self.hooks.failed(res, job, outcome)
        now = self.clock.now()
        if outcome == RETRY:
            when = now + backoff(count, self._rand30())
            failure["next_at"] = epoch_to_string(when)
            self.add_to_set(self.retries, RETRIES, when, res.jid, self.codec.encode(job))
        elif outcome == TO_DEAD:
            self.add_to_set(self.dead, DEAD, now + DEAD_TTL, res.jid, self.codec.encode(job))
        if res.hooked:
            assert self.hooks is not None
            self.hooks.released(res, reason)

    # -- removals other than FETCH, ACK and FAIL --------------------------------------

    @property
    def follows_removals(self) -> bool:
        """Whether some extension hears of removals (:meth:`jobs_removed`): callers that
        drop a whole queue or set look at its jobs only then."""
        hooks = self.hooks
        return hooks is not None and hooks.follows_removals

    def jobs_removed(self, jobs: Iterable[tuple[str, bytes]], how: str) -> None:
        """Tell the extensions that these jobs (jid, payload) left their queue or set other
        than by FETCH, ACK or FAIL (``how``: :data:`~werk.server._extension.KILLED`,
        ``DELETED`` or ``REQUEUED``), in the turn of the removal so that their records
        share its commit. Only the jobs with ``custom`` are passed on: give them all, or
        (for a whole queue, whose items know it) only those."""
        hooks = self.hooks
        if hooks is None or not hooks.follows_removals:
            return
        mark = CUSTOM_MARK
        hooked = [(jid, payload) for jid, payload in jobs if mark in payload]
        if hooked:
            hooks.removed(hooked, how)

    # -- for extensions (the Host protocol) -------------------------------------------

    def configure(self, config: Config) -> None:
        """Have every extension read its part of ``config`` and, if all accept, use it;
        :class:`~werk.ConfigurationError` (and nothing changed) otherwise."""
        if self.hooks is not None:
            self.hooks.configure(config)
        else:
            config.check_tables(())

    def put_record(self, space: str, key: str, value: bytes) -> None:
        """Store an extension's record, in the same commit as this turn's job changes."""
        self.storage.record_put(space, key, value)

    def delete_record(self, space: str, key: str) -> None:
        """Delete an extension's record."""
        self.storage.record_delete(space, key)

    def clear_records(self, space: str) -> None:
        """Delete every record of a space."""
        self.storage.record_clear(space)

    def guard_queue(self, queue: str, extension: Extension) -> None:
        """Ask ``extension.admit`` before any FETCH takes a job from ``queue``."""
        assert self.hooks is not None, "guard_queue is for extensions of this manager"
        guards = self.hooks.guards.setdefault(queue, [])
        if extension not in guards:
            guards.append(extension)

    def unguard_queue(self, queue: str, extension: Extension) -> None:
        """Stop asking ``extension`` about ``queue`` (then hand its waiting jobs out)."""
        assert self.hooks is not None, "unguard_queue is for extensions of this manager"
        guards = self.hooks.guards.get(queue)
        if guards and extension in guards:
            guards.remove(extension)
            if not guards:
                del self.hooks.guards[queue]
            self.wake(queue)

    # -- statistics ------------------------------------------------------------------

    def queue_sizes(self) -> dict[str, int]:
        """Every known queue and its length, sorted by name."""
        return {name: len(self.queues[name]) for name in sorted(self.queues)}

# Unique jobs (docs/enterprise.md section 5): a server extension holding one lock per
# (jobtype, args, queue) for jobs pushed with custom.unique_for.
#
# The lock is taken at PUSH, released at ACK (unique_until "success") or at FETCH
# ("start") only by its holder, kept through FAIL, retries, death and the scheduled delay,
# and always ends unique_for seconds after max(push, at). No removal by the operator
# (MUTATE, QUEUE REMOVE, the web UI) releases it, so removed() is not overridden: Enterprise
# keeps the lock of a job deleted from the retry set, and werk does so wherever the job
# was deleted from (docs/enterprise.md 5.3). Locks are
# records (space "unique"), written in the same commit as the push or ACK that changed
# them, so they survive kill -9 with the jobs; expired ones are dropped by tick(), a slice
# at a time, in deadline order.

from __future__ import annotations

import hashlib
import heapq
import json
import math
from typing import Any, NamedTuple

from werk.server._expiring import to_epoch
from werk.server._extension import ACK, Extension, KnownError, MetricSample, Records
from werk.server._gojson import go_dumps_text
from werk.server._payload import Payload
from werk.server._sets import Reservation

__all__ = ["BAD_UNIQUE_FOR", "BAD_UNIQUE_UNTIL", "NOT_UNIQUE", "SPACE", "Lock", "UniqueJobs"]

SPACE = "unique"
NOT_UNIQUE = KnownError("NOTUNIQUE", "Job not unique")
BAD_UNIQUE_FOR = "invalid unique_for: must be a number of seconds greater than 0"
BAD_UNIQUE_UNTIL = 'invalid unique_until: must be "success" or "start"'
SLICE = 1000  # expired locks dropped per tick() call


class Lock(NamedTuple):
    """A held lock: its holder, when it ends (Unix seconds), and whether FETCH releases it."""

    jid: str
    until: float
    at_start: bool


def unique_for(custom: dict[str, Any]) -> float | str | None:
    """``custom.unique_for`` as seconds, None when absent, or the error text."""
    value = custom.get("unique_for")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or not math.isfinite(value)
    ):
        return BAD_UNIQUE_FOR
    return float(value)


def lock_key(job: Payload) -> str:
    """The lock's key: a digest of jobtype, queue and the canonical JSON of args (sorted
    keys, Go's rendering), so args equal after decoding collide whatever their key order."""
    text = go_dumps_text([job["jobtype"], job["queue"], job["args"]])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class UniqueJobs(Extension):
    """Refuses a push whose (jobtype, args, queue) holds a live lock with
    ``-NOTUNIQUE Job not unique``; see the module comment for the lock's life."""

    def __init__(self) -> None:
        self.locks: dict[str, Lock] = {}
        self.by_jid: dict[str, str] = {}  # holder jid -> key
        self._deadlines: list[tuple[float, str]] = []  # heap of (until, key), may be stale
        self.refused = 0  # pushes refused since boot
        self._checked: tuple[Payload | None, str, float] = (None, "", 0.0)

    # -- state ---------------------------------------------------------------------------

    def load(self, records: Records) -> None:
        self.locks.clear()
        self.by_jid.clear()
        self._deadlines.clear()
        for key, raw in records.get(SPACE, {}).items():
            jid, until, at_start = json.loads(raw)
            self._hold(key, Lock(jid, until, at_start))

    def metric_samples(self) -> list[MetricSample]:
        return [
            MetricSample("werk_server_unique_locks", len(self.locks), help="Unique locks held."),
            MetricSample(
                "werk_server_unique_refused",
                self.refused,
                kind="counter",
                help="Pushes refused as not unique since the server started.",
            ),
        ]

    def flushed(self) -> None:
        # FLUSH erased the jobs the locks stood for.
        self.locks.clear()
        self.by_jid.clear()
        self._deadlines.clear()
        self.host.clear_records(SPACE)

    def _hold(self, key: str, lock: Lock) -> None:
        old = self.locks.get(key)
        if old is not None and self.by_jid.get(old.jid) == key:
            del self.by_jid[old.jid]
        self.locks[key] = lock
        self.by_jid[lock.jid] = key
        heap = self._deadlines
        heapq.heappush(heap, (lock.until, key))
        if len(heap) > 2 * len(self.locks) + 1000:
            # Mostly entries of released locks (a long unique_for, many ACKs): rebuild
            # from the live ones, amortised O(1) per push.
            self._deadlines = [(lk.until, k) for k, lk in self.locks.items()]
            heapq.heapify(self._deadlines)

    def _release(self, jid: str) -> None:
        key = self.by_jid.pop(jid, None)
        if key is None:
            return
        lock = self.locks.get(key)
        if lock is not None and lock.jid == jid:  # only the holder releases
            del self.locks[key]
            self.host.delete_record(SPACE, key)

    def holder(self, job: Payload) -> Lock | None:
        """The live lock ``job``'s key is held by, if any (for the web UI)."""
        lock = self.locks.get(lock_key(job))
        if lock is None or lock.until <= self.host.clock.now():
            return None
        return lock

    # -- PUSH ----------------------------------------------------------------------------

    def check_push(self, job: Payload) -> str | None:
        custom = job["custom"]
        if "_cb" in custom:
            # A batch callback is pushed once by the server itself; a lock would only
            # keep it from firing (docs/enterprise.md section 13).
            self._checked = (job, "", 0.0)
            return None
        until = custom.get("unique_until")
        if until is not None and until not in ("success", "start"):
            return BAD_UNIQUE_UNTIL
        seconds = unique_for(custom)
        if seconds is None:
            self._checked = (job, "", 0.0)
            return None
        if isinstance(seconds, str):
            return seconds
        key = lock_key(job)
        lock = self.locks.get(key)
        if lock is not None and lock.until > self.host.clock.now():
            self.refused += 1
            return NOT_UNIQUE
        self._checked = (job, key, seconds)  # pushed() of the same job reuses them
        return None

    def pushed(self, job: Payload) -> None:
        checked, key, seconds = self._checked
        self._checked = (None, "", 0.0)
        custom = job["custom"]
        if checked is not job:  # not what check_push saw last (never, through the manager)
            value = unique_for(custom)
            if not isinstance(value, float):
                return
            key, seconds = lock_key(job), value
        elif not seconds:
            return
        start = self.host.clock.now()
        at = job.get("at")
        if at:
            start = max(start, to_epoch(at))  # checked by the push already
        lock = Lock(job["jid"], start + seconds, custom.get("unique_until") == "start")
        self._hold(key, lock)
        self.host.put_record(SPACE, key, json.dumps([lock.jid, lock.until, lock.at_start]).encode())

    # -- FETCH, ACK ----------------------------------------------------------------------

    def reserved(self, res: Reservation, job: Payload | None) -> None:
        key = self.by_jid.get(res.jid)
        lock = self.locks.get(key) if key is not None else None
        if lock is not None and lock.at_start:
            self._release(res.jid)

    def discarded(self, job: Payload, reason: str) -> None:
        # An expired job never runs: its duplicates may be pushed again.
        self._release(job["jid"])

    def released(self, res: Reservation, reason: str) -> None:
        if reason == ACK:
            self._release(res.jid)

    # -- expiry --------------------------------------------------------------------------

    def tick(self, now: float) -> bool:
        for _ in range(SLICE):
            heap = self._deadlines
            if not heap or heap[0][0] > now:
                return False
            until, key = heapq.heappop(heap)
            lock = self.locks.get(key)
            if lock is not None and lock.until == until:  # not replaced since
                del self.locks[key]
                if self.by_jid.get(lock.jid) == key:
                    del self.by_jid[lock.jid]
                self.host.delete_record(SPACE, key)
        return bool(self._deadlines) and self._deadlines[0][0] <= now

"""The server's jobs in memory: queues, the scheduled, retry and dead sets, reservations,
counters and the ids of stored entries, rebuilt from a storage snapshot at boot.

:class:`JobState` holds the containers and the few write-through steps every command
shares; :class:`~werk.server._manager.Manager` adds the commands' semantics on top.
"""

from __future__ import annotations

from werk.server._gojson import GoJSONError
from werk.server._payload import JobCodec
from werk.server._queue import JobQueue
from werk.server._sets import QueueItem, Reservation, SetEntry, SortedSet
from werk.server._storage import DEAD, QUEUE, RETRIES, SCHEDULED, WORKING, Snapshot, Storage

__all__ = ["JobState"]


class JobState:
    """The in-memory jobs of one server, written through to ``storage``."""

    storage: Storage
    codec: JobCodec

    def restore(self, snap: Snapshot, hooked: bool) -> None:
        """(Re)build everything from ``snap``; ``hooked``: server extensions hear of the
        end of every reservation loaded."""
        self.queues: dict[str, JobQueue] = {}
        # A storage that gives queued jobs' bytes back keeps them out of memory.
        self._source = self.storage if self.storage.keeps_queued else None
        self.paused: set[str] = set()
        self.scheduled = SortedSet()
        self.retries = SortedSet()
        self.dead = SortedSet()
        self.working = SortedSet()
        self.reservations: dict[str, Reservation] = {}
        self.counters: dict[str, int] = dict(snap.counters)
        for name, paused in snap.queues.items():
            self.queues[name] = JobQueue(self._source)
            if paused:
                self.paused.add(name)
        last = 0
        sets = {SCHEDULED: self.scheduled, RETRIES: self.retries, DEAD: self.dead}
        for e in snap.entries:
            last = max(last, e.id)
            if e.kind == QUEUE:
                payload = e.payload
                reserve_for, custom = 0, False
                # Decoded only if it may have either (a backlog of millions boots faster).
                if b'"reserve_for":' in payload or b'"custom":' in payload:
                    _, reserve_for, custom = self._fields_of(payload)
                q = self.queues.get(e.name)
                if q is None:
                    q = self.queues[e.name] = JobQueue(self._source)
                q.append(QueueItem(e.id, e.jid, reserve_for, e.payload, custom))
            elif e.kind == WORKING:
                res = Reservation(e.id, e.score, e.jid, e.payload, e.name, e.since)
                res.queue, _, res.custom = self._fields_of(e.payload)
                res.hooked = hooked
                self.working.add(res)
                self.reservations[e.jid] = res
            else:
                sets[e.kind].add(SetEntry(e.id, e.score, e.jid, e.payload))
        self._next_id = last + 1

    def _fields_of(self, payload: bytes) -> tuple[str, int, bool]:
        """A stored job's queue, reserve_for and whether it has ``custom``."""
        try:
            job = self.codec.loads(payload)
            queue, custom = job.get("queue") or "", bool(job.get("custom"))
            return queue, int(job.get("reserve_for") or 0), custom
        except (GoJSONError, AttributeError, TypeError, ValueError):
            return "", 0, False

    def next_id(self) -> int:
        """A new entry id: ids only grow, so a queue loaded in id order is in FIFO order."""
        eid = self._next_id
        self._next_id = eid + 1
        return eid

    def queue_of(self, name: str) -> JobQueue:
        """The queue ``name``, made (and its name stored) if it is new."""
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = JobQueue(self._source)
            self.storage.queue_known(name, False)
        return q

    def add_to_set(self, s: SortedSet, kind: int, score: float, jid: str, payload: bytes) -> None:
        """Add a job to the scheduled, retry or dead set (``kind`` its stored kind)."""
        eid = self.next_id()
        s.add(SetEntry(eid, score, jid, payload))
        self.storage.entry_add(eid, kind, "", score, jid, payload, 0.0)

"""In-memory structures of the manager: queue items, sorted sets, reservations.

Example::

    >>> s = SortedSet()
    >>> s.add(SetEntry(1, 20.0, "jid-b", b"{}"))
    >>> s.add(SetEntry(2, 10.0, "jid-a", b"{}"))
    >>> [e.jid for e in s.pop_due(15.0, 100)]
    ['jid-a']
    >>> len(s)
    1
"""

from __future__ import annotations

import heapq
from typing import Any, NamedTuple

__all__ = ["QueueItem", "Reservation", "SetEntry", "SetScan", "SortedSet"]


class QueueItem(NamedTuple):
    """A job waiting in a queue: its stored id, jid, reserve_for, canonical bytes, and
    whether it has a ``custom`` object (what server extensions look at)."""

    id: int
    jid: str
    reserve_for: int
    payload: bytes
    custom: bool = False


class SetEntry:
    """A job in the scheduled, retries or dead set (score = Unix seconds)."""

    __slots__ = ("id", "jid", "payload", "score")

    def __init__(self, eid: int, score: float, jid: str, payload: bytes) -> None:
        self.id = eid
        self.score = score
        self.jid = jid
        self.payload = payload


class Reservation(SetEntry):
    """A fetched job: expires at ``score``; ``wid`` is the fetching worker ("" for producers).

    ``queue`` and ``item`` say where the job came from (``item`` is None after a restart):
    a job whose FETCH reply never reached its client goes back there, as if never fetched.
    ``custom`` says the job has a ``custom`` object and ``hooked`` that server extensions
    hear of this reservation's end; ``job`` is the payload decoded for them at FETCH
    (kept until the reservation ends, so that ACK does not decode it again).
    """

    __slots__ = ("custom", "hooked", "item", "job", "queue", "since", "wid")

    def __init__(
        self, eid: int, score: float, jid: str, payload: bytes, wid: str, since: float
    ) -> None:
        super().__init__(eid, score, jid, payload)
        self.wid = wid
        self.since = since
        self.queue = ""
        self.item: QueueItem | None = None
        self.custom = False
        self.hooked = False
        self.job: dict[str, Any] | None = None


class SortedSet:
    """Entries by id plus a lazy min-heap by (score, id) for "everything due by now"."""

    __slots__ = ("_heap", "entries")

    def __init__(self) -> None:
        self.entries: dict[int, SetEntry] = {}
        self._heap: list[tuple[float, int]] = []

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: SetEntry) -> None:
        """Insert an entry."""
        self.entries[entry.id] = entry
        heapq.heappush(self._heap, (entry.score, entry.id))

    def remove(self, eid: int) -> SetEntry | None:
        """Remove by id; the heap forgets it lazily."""
        return self.entries.pop(eid, None)

    def pop_due(self, now: float, limit: int) -> list[SetEntry]:
        """Remove and return up to ``limit`` entries with score <= now, lowest first."""
        heap, entries = self._heap, self.entries
        out: list[SetEntry] = []
        while heap and len(out) < limit and heap[0][0] <= now:
            _, eid = heapq.heappop(heap)
            entry = entries.pop(eid, None)
            if entry is not None:
                out.append(entry)
        if len(heap) > 64 and len(heap) > 4 * len(entries):
            self._heap = [(e.score, e.id) for e in entries.values()]
            heapq.heapify(self._heap)
        return out

    def has_due(self, now: float) -> bool:
        """Whether some entry's score is <= now."""
        heap, entries = self._heap, self.entries
        while heap and heap[0][1] not in entries:
            heapq.heappop(heap)  # forgotten lazily: drop it now
        return bool(heap) and heap[0][0] <= now

    def ordered(self) -> list[SetEntry]:
        """Every entry in (score, id) order."""
        return sorted(self.entries.values(), key=lambda e: (e.score, e.id))

    def scan(self) -> SetScan:
        """The ids of the entries held now, to be read lowest (score, id) first, a batch at
        a time (a copy of the heap: O(n) pointer copies, no sort)."""
        return SetScan(list(self._heap))

    def clear(self) -> dict[int, SetEntry]:
        """Remove everything. The old entries come back: freeing a million of them takes
        a quarter of a second, which the caller may spread out (``Manager.release``)."""
        old = self.entries
        self.entries = {}
        self._heap = []
        return old


class SetScan:
    """Ids of a set's entries in (score, id) order, popped lazily from a heap copy.

    Ids of entries removed since the copy was made still come out: look each one up.

    Example::

        >>> s = SortedSet()
        >>> for eid, score in ((1, 30.0), (2, 10.0), (3, 20.0)):
        ...     s.add(SetEntry(eid, score, f"jid-{eid}", b"{}"))
        >>> scan = s.scan()
        >>> [scan.next_id() for _ in range(4)]
        [2, 3, 1, -1]
    """

    __slots__ = ("_heap",)

    def __init__(self, heap: list[tuple[float, int]]) -> None:
        self._heap = heap

    def __len__(self) -> int:
        return len(self._heap)

    def next_id(self) -> int:
        """The next id, lowest (score, id) first; -1 when there is none left."""
        heap = self._heap
        return heapq.heappop(heap)[1] if heap else -1

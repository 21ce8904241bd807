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
from typing import NamedTuple

__all__ = ["QueueItem", "Reservation", "SetEntry", "SortedSet"]


class QueueItem(NamedTuple):
    """A job waiting in a queue: its stored id, jid, reserve_for and canonical bytes."""

    id: int
    jid: str
    reserve_for: int
    payload: bytes


class SetEntry:
    """A job in the scheduled, retries or dead set (score = Unix seconds)."""

    __slots__ = ("id", "jid", "payload", "score")

    def __init__(self, eid: int, score: float, jid: str, payload: bytes) -> None:
        self.id = eid
        self.score = score
        self.jid = jid
        self.payload = payload


class Reservation(SetEntry):
    """A fetched job: expires at ``score``; ``wid`` is the fetching worker ("" for producers)."""

    __slots__ = ("since", "wid")

    def __init__(
        self, eid: int, score: float, jid: str, payload: bytes, wid: str, since: float
    ) -> None:
        super().__init__(eid, score, jid, payload)
        self.wid = wid
        self.since = since


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

    def ordered(self) -> list[SetEntry]:
        """Every entry in (score, id) order."""
        return sorted(self.entries.values(), key=lambda e: (e.score, e.id))

    def clear(self) -> None:
        """Remove everything."""
        self.entries.clear()
        self._heap.clear()

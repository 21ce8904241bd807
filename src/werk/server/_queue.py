"""One queue's jobs in FIFO order, held compactly.

A queued job is mostly waiting: what it needs while it waits is its place in line. A
:class:`JobQueue` keeps, per job, its stored id and (unless the storage keeps it) its
canonical bytes, in two parallel deques; the jid, ``reserve_for`` and ``custom`` are read
back from the bytes when the job leaves the queue. Only the rare job that has
``reserve_for`` or ``custom`` keeps those three in a side table. Taking a job out gives
a full :class:`~werk.server._sets.QueueItem`.

With a storage that can give a queued job's bytes back by id (SQLite: its journal, then
its database), the bytes are not held in memory at all: a waiting job costs its id and a
deque slot, some 40 bytes, where a :class:`~werk.server._sets.QueueItem` with its jid and
bytes cost over 500 for a job with 100 bytes of args.

Example::

    >>> q = JobQueue()
    >>> q.append(QueueItem(7, "jid-00000007", 0, b'{"retry":25,"jid":"jid-00000007"}'))
    >>> len(q), q[0].jid
    (1, 'jid-00000007')
    >>> q.popleft().payload
    b'{"retry":25,"jid":"jid-00000007"}'
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from typing import Protocol

from werk.server._sets import QueueItem

__all__ = ["JobQueue", "PayloadSource"]

# In canonical bytes the job's own "jid" comes after "retry", "failure" and "custom". A
# failure has no "jid" key and a string value cannot hold this sequence (its quotes are
# escaped), so without custom the first match is the job's jid.
_JID_KEY = b',"jid":"'
# A QueueItem from a full tuple, without the Python-level __new__ of a NamedTuple.
_new_item = tuple.__new__


def _jid_of(payload: bytes) -> str:
    """The jid in canonical bytes of a job without ``custom``."""
    start = payload.find(_JID_KEY) + 8
    raw = payload[start : payload.index(b'"', start)]
    if b"\\" in raw:  # escaped (a quote, <, a control character...): decode it all
        jid: str = json.loads(payload)["jid"]
        return jid
    return raw.decode()


class PayloadSource(Protocol):
    """What a :class:`JobQueue` asks for a job's bytes when it does not hold them."""

    def queued_payload(self, eid: int) -> bytes:
        """The canonical bytes of the queued job stored under ``eid``."""
        ...


class JobQueue:
    """A queue's jobs (see the module docstring); the methods of a ``deque`` of
    :class:`~werk.server._sets.QueueItem` that the server uses."""

    __slots__ = ("_ids", "_payloads", "_source", "_special")

    def __init__(self, source: PayloadSource | None = None) -> None:
        self._ids: deque[int] = deque()
        # None: ``source`` gives the bytes back (the storage keeps them).
        self._payloads: deque[bytes] | None = None if source is not None else deque()
        self._source = source
        self._special: dict[int, tuple[str, int, bool]] = {}  # id -> jid, reserve_for, custom

    def __len__(self) -> int:
        return len(self._ids)

    def __bool__(self) -> bool:
        return bool(self._ids)

    def __repr__(self) -> str:
        return f"<JobQueue of {len(self._ids)} jobs>"

    def _keep(self, item: QueueItem) -> None:
        if item.reserve_for or item.custom:
            self._special[item.id] = (item.jid, item.reserve_for, item.custom)

    def append(self, item: QueueItem) -> None:
        """Add a job at the end."""
        self._ids.append(item.id)
        if self._payloads is not None:
            self._payloads.append(item.payload)
        self._keep(item)

    def add(self, eid: int, jid: str, reserve_for: int, payload: bytes, custom: bool) -> None:
        """:meth:`append` from the fields (a PUSH: no item to build)."""
        self._ids.append(eid)
        if self._payloads is not None:
            self._payloads.append(payload)
        if reserve_for or custom:
            self._special[eid] = (jid, reserve_for, custom)

    def appendleft(self, item: QueueItem) -> None:
        """Add a job at the head (a job put back)."""
        self._ids.appendleft(item.id)
        if self._payloads is not None:
            self._payloads.appendleft(item.payload)
        self._keep(item)

    def popleft(self) -> QueueItem:
        """Take the first job out; IndexError if there is none."""
        eid = self._ids.popleft()
        payloads = self._payloads
        if payloads is not None:
            payload = payloads.popleft()
        else:
            try:
                payload = self._source.queued_payload(eid)  # type: ignore[union-attr]
            except BaseException:
                self._ids.appendleft(eid)  # not lost: still first
                raise
        special = self._special.pop(eid, None) if self._special else None
        if special is None:
            return _new_item(QueueItem, (eid, _jid_of(payload), 0, payload, False))
        return _new_item(QueueItem, (eid, special[0], special[1], payload, special[2]))

    def _item(self, eid: int, payload: bytes) -> QueueItem:
        special = self._special.get(eid)
        if special is None:
            return _new_item(QueueItem, (eid, _jid_of(payload), 0, payload, False))
        return _new_item(QueueItem, (eid, special[0], special[1], payload, special[2]))

    def _payload(self, index: int) -> bytes:
        if self._payloads is not None:
            return self._payloads[index]
        return self._source.queued_payload(self._ids[index])  # type: ignore[union-attr]

    def __getitem__(self, index: int) -> QueueItem:
        return self._item(self._ids[index], self._payload(index))

    def __iter__(self) -> Iterator[QueueItem]:
        if self._payloads is not None:
            for eid, payload in zip(self._ids, self._payloads, strict=True):
                yield self._item(eid, payload)
            return
        source = self._source
        assert source is not None
        for eid in self._ids:  # like a deque's: a change meanwhile ends it (RuntimeError)
            yield self._item(eid, source.queued_payload(eid))

    def custom_items(self) -> list[QueueItem]:
        """The jobs that have ``custom``, in no particular order (what extensions hear of
        when a queue is dropped): found from the side table, so that a storage holding the
        bytes reads only these jobs', not every queued job's."""
        if self._payloads is not None:
            return [item for item in self if item.custom]
        source = self._source
        assert source is not None
        return [
            _new_item(QueueItem, (eid, jid, reserve_for, source.queued_payload(eid), True))
            for eid, (jid, reserve_for, custom) in self._special.items()
            if custom
        ]

    def remove(self, item: QueueItem) -> None:
        """Remove the job with ``item``'s id (ids are unique); ValueError if absent."""
        index = self._ids.index(item.id)
        del self._ids[index]
        if self._payloads is not None:
            del self._payloads[index]
        self._special.pop(item.id, None)

    def clear(self) -> None:
        """Remove every job."""
        self._ids.clear()
        if self._payloads is not None:
            self._payloads.clear()
        self._special.clear()

    def pop(self) -> None:
        """Drop the last job (how a dropped queue is freed a slice at a time, see
        :class:`~werk.server._releaser.Releaser`)."""
        eid = self._ids.pop()
        if self._payloads is not None:
            self._payloads.pop()
        if self._special:
            self._special.pop(eid, None)

    def copy(self) -> JobQueue:
        """A queue of the same jobs."""
        other = JobQueue(self._source)
        other._ids = self._ids.copy()
        if self._payloads is not None:
            other._payloads = self._payloads.copy()
        other._special = self._special.copy()
        return other

"""One queue's jobs in FIFO order, held compactly.

A queued job is mostly waiting: what it needs while it waits is its place in line. A
:class:`JobQueue` keeps, per job, its stored id and (unless the storage keeps it) its
canonical bytes; the jid, ``reserve_for`` and ``custom`` are read back from the bytes
when the job leaves the queue. Only the rare job that has ``reserve_for`` or ``custom``
keeps those three in a side table. Taking a job out gives a full
:class:`~werk.server._sets.QueueItem`.

The jobs sit in three stretches: a *head* and a *tail* of loose jobs (an int and a
``bytes`` object each, in two parallel deques) and between them *chunks* of
:data:`CHUNK` jobs, each one ``marshal`` blob of their ids and bytes (see
:mod:`werk.server._packed`): 5 bytes of id and 5 of header per job next to its bytes. A
PUSH appends to the tail, which is packed into a chunk once it is :data:`CHUNK` long; a
FETCH pops from the head, which is the oldest chunk unpacked once it runs out. So the
per-job path stays a deque append and a deque pop, and a backlog costs its bytes and some
10 bytes a job. A short queue (the usual case: jobs fetched as they come) has no chunks
and its head *is* its tail.

With a storage that can give a queued job's bytes back by id (SQLite: its journal, then
its database), the bytes are not held in memory at all: a waiting job costs its 5 bytes of
id in a chunk, where a :class:`~werk.server._sets.QueueItem` with its jid and bytes cost
over 500 for a job with 100 bytes of args.

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
from itertools import chain, repeat
from typing import Protocol

from werk.server import _packed as packed
from werk.server._sets import QueueItem

__all__ = ["CHUNK", "JobQueue", "PayloadSource"]

CHUNK = 256
"""Jobs per packed chunk: a chunk's own objects (some 250 bytes) are 1 byte a job, and a
queue holds at most twice this many loose jobs."""

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


def _pairs(ids: deque[int], payloads: deque[bytes] | None) -> Iterator[tuple[int, bytes | None]]:
    return zip(ids, repeat(None)) if payloads is None else zip(ids, payloads, strict=True)


class PayloadSource(Protocol):
    """What a :class:`JobQueue` asks for a job's bytes when it does not hold them."""

    def queued_payload(self, eid: int) -> bytes:
        """The canonical bytes of the queued job stored under ``eid``."""
        ...


class JobQueue:
    """A queue's jobs (see the module docstring); the methods of a ``deque`` of
    :class:`~werk.server._sets.QueueItem` that the server uses."""

    __slots__ = (
        "_chunked",
        "_chunks",
        "_head_ids",
        "_head_payloads",
        "_source",
        "_special",
        "_tail_ids",
        "_tail_payloads",
        "_version",
    )

    # Invariants: the head is empty only if the whole queue is, and then the head is the
    # tail; while the head is the tail there are no chunks. So ``bool(self._head_ids)``
    # is the queue's truth and a short queue is one pair of deques, as before chunks.

    def __init__(self, source: PayloadSource | None = None) -> None:
        self._source = source
        self._special: dict[int, tuple[str, int, bool]] = {}  # id -> jid, reserve_for, custom
        self._reset()

    def _reset(self) -> None:
        ids: deque[int] = deque()
        # None: ``source`` gives the bytes back (the storage keeps them).
        payloads: deque[bytes] | None = None if self._source is not None else deque()
        self._head_ids = self._tail_ids = ids
        self._head_payloads = self._tail_payloads = payloads
        self._chunks: deque[packed.Chunk] = deque()
        self._chunked = 0  # jobs in chunks
        # Bumped by every change but a PUSH's and a FETCH's (which change a length): what
        # an iterator checks to end like a deque's (RuntimeError) if the queue changes.
        self._version = 0

    def __len__(self) -> int:
        head = self._head_ids
        if head is self._tail_ids:
            return len(head)
        return len(head) + self._chunked + len(self._tail_ids)

    def __bool__(self) -> bool:
        return bool(self._head_ids)

    def __repr__(self) -> str:
        return f"<JobQueue of {len(self)} jobs>"

    def append(self, item: QueueItem) -> None:
        """Add a job at the end."""
        self.add(item.id, item.jid, item.reserve_for, item.payload, item.custom)

    def add(self, eid: int, jid: str, reserve_for: int, payload: bytes, custom: bool) -> None:
        """:meth:`append` from the fields (a PUSH: no item to build)."""
        ids = self._tail_ids
        ids.append(eid)
        payloads = self._tail_payloads
        if payloads is not None:
            payloads.append(payload)
        if reserve_for or custom:
            self._special[eid] = (jid, reserve_for, custom)
        if len(ids) >= 256:  # CHUNK, as a constant: every PUSH comes here
            self._seal()

    def _seal(self) -> None:
        # The tail is full: pack it into a chunk, unless it is the head too (the queue
        # has just grown long): then it stays the loose head and a new tail starts.
        ids, payloads = self._tail_ids, self._tail_payloads
        if ids is not self._head_ids:
            self._chunks.append(packed.pack(ids, payloads))
            self._chunked += len(ids)
        self._tail_ids = deque()
        self._tail_payloads = None if payloads is None else deque()
        self._version += 1

    def _refill(self) -> None:
        # The head (not the tail) ran out: the oldest chunk unpacked, or the tail itself.
        if self._chunks:
            chunk = self._chunks.popleft()
            self._chunked -= chunk[0]
            self._head_ids, self._head_payloads = packed.unpack(chunk, self._source is None)
        else:
            self._head_ids, self._head_payloads = self._tail_ids, self._tail_payloads
        self._version += 1

    def appendleft(self, item: QueueItem) -> None:
        """Add a job at the head (a job put back)."""
        self._head_ids.appendleft(item.id)
        if self._head_payloads is not None:
            self._head_payloads.appendleft(item.payload)
        if item.reserve_for or item.custom:
            self._special[item.id] = (item.jid, item.reserve_for, item.custom)
        self._version += 1

    def popleft(self) -> QueueItem:
        """Take the first job out; IndexError if there is none."""
        ids = self._head_ids
        eid = ids.popleft()
        payloads = self._head_payloads
        if payloads is not None:
            payload = payloads.popleft()
        else:
            try:
                payload = self._source.queued_payload(eid)  # type: ignore[union-attr]
            except BaseException:
                ids.appendleft(eid)  # not lost: still first
                raise
        if not ids and ids is not self._tail_ids:
            self._refill()
        special = self._special.pop(eid, None) if self._special else None
        if special is None:
            return _new_item(QueueItem, (eid, _jid_of(payload), 0, payload, False))
        return _new_item(QueueItem, (eid, special[0], special[1], payload, special[2]))

    def _item(self, eid: int, payload: bytes | None) -> QueueItem:
        if payload is None:
            payload = self._source.queued_payload(eid)  # type: ignore[union-attr]
        special = self._special.get(eid)
        if special is None:
            return _new_item(QueueItem, (eid, _jid_of(payload), 0, payload, False))
        return _new_item(QueueItem, (eid, special[0], special[1], payload, special[2]))

    def _stretches(self) -> Iterator[tuple[deque[int], deque[bytes] | None]]:
        # The loose stretches (head, then tail) as unpacked chunks would be.
        yield self._head_ids, self._head_payloads
        if self._tail_ids is not self._head_ids:
            yield self._tail_ids, self._tail_payloads

    def __getitem__(self, index: int) -> QueueItem:
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("JobQueue index out of range")
        head = self._head_ids
        if index < len(head):
            payloads = self._head_payloads
            return self._item(head[index], None if payloads is None else payloads[index])
        index -= len(head)
        for chunk in self._chunks:
            if index < chunk[0]:
                return self._item(*packed.entry_at(chunk, self._source is None, index))
            index -= chunk[0]
        payloads = self._tail_payloads
        return self._item(self._tail_ids[index], None if payloads is None else payloads[index])

    def _walk(self) -> Iterator[tuple[int, bytes | None]]:
        # (id, bytes or None) front to back; like a deque's iterator, a change to the queue
        # meanwhile ends it (RuntimeError). A PUSH or a FETCH changes a loose stretch's
        # length (the deques' own iterators see a change to the one being walked); any
        # other change bumps the version.
        head, tail = self._head_ids, self._tail_ids
        state = (self._version, len(head), len(tail))
        pairs: Iterator[Iterator[tuple[int, bytes | None]]]
        pairs = iter((_pairs(head, self._head_payloads),))
        if head is not tail:  # a chunk is unpacked when reached
            unpacked = map(packed.entries, self._chunks, repeat(self._source is None))
            pairs = chain(pairs, unpacked, (_pairs(tail, self._tail_payloads),))
        for pair in chain.from_iterable(pairs):
            yield pair
            if (self._version, len(self._head_ids), len(self._tail_ids)) != state:
                raise RuntimeError("JobQueue mutated during iteration")

    def __iter__(self) -> Iterator[QueueItem]:
        item = self._item
        for eid, payload in self._walk():
            yield item(eid, payload)

    def custom_items(self) -> list[QueueItem]:
        """The jobs that have ``custom``, in no particular order (what extensions hear of
        when a queue is dropped): found from the side table, so that a storage holding the
        bytes reads only these jobs', not every queued job's."""
        custom = [eid for eid, (_, _, has) in self._special.items() if has]
        if not custom:
            return []
        if self._source is None:
            wanted = set(custom)
            return [self._item(eid, payload) for eid, payload in self._walk() if eid in wanted]
        return [self._item(eid, None) for eid in custom]

    def remove(self, item: QueueItem) -> None:
        """Remove the job with ``item``'s id (ids are unique); ValueError if absent."""
        eid = item.id
        for ids, payloads in self._stretches():
            if eid in ids:
                index = ids.index(eid)
                del ids[index]
                if payloads is not None:
                    del payloads[index]
                break
        else:
            chunks = self._chunks
            keeps = self._source is None
            for k, chunk in enumerate(chunks):
                chunk_ids = packed.ids_of(chunk, keeps)
                if eid in chunk_ids:
                    smaller = packed.without(chunk, keeps, chunk_ids.index(eid))
                    if smaller is None:
                        del chunks[k]
                    else:
                        chunks[k] = smaller
                    self._chunked -= 1
                    break
            else:
                raise ValueError(f"job {eid} not in queue")
        self._special.pop(eid, None)
        if not self._head_ids and self._head_ids is not self._tail_ids:
            self._refill()
        self._version += 1

    def clear(self) -> None:
        """Remove every job."""
        self._reset()
        self._special.clear()

    def pop(self) -> None:
        """Drop the last job (how a dropped queue is freed a slice at a time, see
        :class:`~werk.server._releaser.Releaser`)."""
        if not self._tail_ids and self._chunks and self._tail_ids is not self._head_ids:
            chunk = self._chunks.pop()  # the newest chunk unpacked becomes the tail
            self._chunked -= chunk[0]
            self._tail_ids, self._tail_payloads = packed.unpack(chunk, self._source is None)
        ids, payloads = self._tail_ids, self._tail_payloads
        if not ids:
            ids, payloads = self._head_ids, self._head_payloads
        eid = ids.pop()
        if payloads is not None:
            payloads.pop()
        if self._special:
            self._special.pop(eid, None)
        if not self._head_ids and self._head_ids is not self._tail_ids:
            self._refill()
        self._version += 1

    def copy(self) -> JobQueue:
        """A queue of the same jobs (sharing the chunks, which never change)."""
        other = JobQueue(self._source)
        head_payloads = self._head_payloads
        other._head_ids = other._tail_ids = self._head_ids.copy()
        other._head_payloads = other._tail_payloads = (
            None if head_payloads is None else head_payloads.copy()
        )
        if self._head_ids is not self._tail_ids:
            tail_payloads = self._tail_payloads
            other._tail_ids = self._tail_ids.copy()
            other._tail_payloads = None if tail_payloads is None else tail_payloads.copy()
            other._chunks = self._chunks.copy()
            other._chunked = self._chunked
        other._special = self._special.copy()
        return other

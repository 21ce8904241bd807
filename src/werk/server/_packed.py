"""Runs of queued jobs packed into one ``bytes`` each (see
:class:`~werk.server._queue.JobQueue`).

A chunk is ``(count, blob)``: the ids of ``count`` jobs and, when the queue keeps them,
their canonical bytes, marshalled into one ``bytes``. marshal writes an id in 5 bytes
(an int object and a deque slot: 36 to 44) and a job's bytes behind a 5-byte header (a
``bytes`` object: a 33-byte header, its allocator size class and a deque slot), and reads
them all back in one C call: no Python-level work per job. Format version 2: no
back-references, so writing does not look each object up in a table. Only blobs written
here are read back.

Chunks are never changed once made: a copy of a queue shares them, and taking one job
out of the middle makes a new chunk.
"""

from __future__ import annotations

import marshal
from collections import deque
from collections.abc import Iterator
from itertools import repeat

Chunk = tuple[int, bytes]


def pack(ids: deque[int], payloads: deque[bytes] | None) -> Chunk:
    """A chunk of these jobs (in order)."""
    if payloads is None:
        return len(ids), marshal.dumps(list(ids), 2)
    blob = marshal.dumps((list(ids), list(payloads)), 2)
    # marshal grows its buffer to twice the size and then shrinks it in place: the
    # allocator's heap keeps the freed half behind every chunk (some 100 bytes a job
    # in a server's resident memory). A copy of the exact size frees the buffer whole,
    # to be grown into by the next chunk's.
    return len(ids), bytes(memoryview(blob))


def _lists(chunk: Chunk, keeps: bool) -> tuple[list[int], list[bytes] | None]:
    if keeps:
        ids, payloads = marshal.loads(chunk[1])
        return ids, payloads
    return marshal.loads(chunk[1]), None


def unpack(chunk: Chunk, keeps: bool) -> tuple[deque[int], deque[bytes] | None]:
    """The chunk's ids and (if ``keeps``: it has them) bytes as deques again."""
    ids, payloads = _lists(chunk, keeps)
    return deque(ids), None if payloads is None else deque(payloads)


def ids_of(chunk: Chunk, keeps: bool) -> list[int]:
    """The chunk's ids, in order."""
    return _lists(chunk, keeps)[0]


def entries(chunk: Chunk, keeps: bool) -> Iterator[tuple[int, bytes | None]]:
    """The chunk's (id, bytes) pairs in order; bytes None unless ``keeps``."""
    ids, payloads = _lists(chunk, keeps)
    if payloads is None:
        return zip(ids, repeat(None))
    return zip(ids, payloads, strict=True)


def entry_at(chunk: Chunk, keeps: bool, index: int) -> tuple[int, bytes | None]:
    """The chunk's ``index``-th (id, bytes)."""
    ids, payloads = _lists(chunk, keeps)
    return ids[index], None if payloads is None else payloads[index]


def without(chunk: Chunk, keeps: bool, index: int) -> Chunk | None:
    """The chunk less its ``index``-th job (None if that was the last one)."""
    ids, payloads = unpack(chunk, keeps)
    if len(ids) == 1:
        return None
    del ids[index]
    if payloads is not None:
        del payloads[index]
    return pack(ids, payloads)

"""The storage's change records: what the manager did, as small tuples.

A change is ``(code, params)``. The SQLite storage journals lists of them (one record per
event-loop turn), later folds them into the database with :func:`write_ops`, and at boot
applies the ones not yet folded to what it read from the database with
:func:`apply_ops`. Both interpret the same codes, so the journal and the database can
never disagree on what a change means.

Example::

    >>> entries, queues, counters = {}, {}, {}
    >>> apply_ops([(INSERT, (1, 0, "default", 0.0, "jid-1", b"{}", 0.0)),
    ...            (COUNTER, ("processed", 1))], entries, queues, counters)
    >>> [e.jid for e in entries.values()], counters
    (['jid-1'], {'processed': 1})
"""

from __future__ import annotations

import sqlite3
from typing import Any

from werk.server.storage.base import QUEUE, StoredEntry

__all__ = [
    "CLEAR_KIND",
    "COUNTER",
    "DELETE",
    "FLUSH_ALL",
    "INSERT",
    "QUEUE_FORGET",
    "QUEUE_KNOWN",
    "Op",
    "apply_ops",
    "write_ops",
]

Op = tuple[int, tuple[Any, ...]]

# The codes are stored in journal files: never renumber them.
INSERT = 0  # (id, kind, name, score, jid, payload, since)
DELETE = 1  # (id,)
QUEUE_KNOWN = 2  # (name, paused)
QUEUE_FORGET = 3  # (name,)
CLEAR_KIND = 4  # (kind,)
COUNTER = 5  # (name, delta)
FLUSH_ALL = 6  # ()

_SQL: dict[int, tuple[str, ...]] = {
    INSERT: (
        "INSERT INTO entries (id, kind, name, score, jid, payload, since) VALUES (?,?,?,?,?,?,?)",
    ),
    DELETE: ("DELETE FROM entries WHERE id = ?",),
    QUEUE_KNOWN: (
        "INSERT INTO queues (name, paused) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET paused = excluded.paused",
    ),
    QUEUE_FORGET: (
        f"DELETE FROM entries WHERE kind = {QUEUE} AND name = ?",
        "DELETE FROM queues WHERE name = ?",
    ),
    CLEAR_KIND: ("DELETE FROM entries WHERE kind = ?",),
    COUNTER: (
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
    ),
    FLUSH_ALL: ("DELETE FROM entries", "DELETE FROM counters", "DELETE FROM queues"),
}


def write_ops(db: sqlite3.Connection, ops: list[Op]) -> None:
    """Execute ``ops`` in order inside the caller's transaction (runs of one kind batched)."""
    i, n = 0, len(ops)
    while i < n:
        code = ops[i][0]
        j = i + 1
        while j < n and ops[j][0] == code:
            j += 1
        statements = _SQL[code]
        if len(statements) > 1:
            for _, params in ops[i:j]:
                for sql in statements:
                    db.execute(sql, params if "?" in sql else ())
        elif j - i == 1:
            db.execute(statements[0], ops[i][1])
        else:
            db.executemany(statements[0], [op[1] for op in ops[i:j]])
        i = j


def apply_ops(
    ops: list[Op],
    entries: dict[int, StoredEntry],
    queues: dict[str, bool],
    counters: dict[str, int],
) -> None:
    """Apply ``ops`` to state read from the database (what :func:`write_ops` would do)."""
    for code, p in ops:
        if code == INSERT:
            entries[p[0]] = StoredEntry(p[0], p[1], p[2], p[3], p[4], p[5], p[6])
        elif code == DELETE:
            entries.pop(p[0], None)
        elif code == QUEUE_KNOWN:
            queues[p[0]] = bool(p[1])
        elif code == QUEUE_FORGET:
            for eid in [e.id for e in entries.values() if e.kind == QUEUE and e.name == p[0]]:
                del entries[eid]
            queues.pop(p[0], None)
        elif code == CLEAR_KIND:
            for eid in [e.id for e in entries.values() if e.kind == p[0]]:
                del entries[eid]
        elif code == COUNTER:
            counters[p[0]] = counters.get(p[0], 0) + p[1]
        elif code == FLUSH_ALL:
            entries.clear()
            queues.clear()
            counters.clear()
        else:
            raise ValueError(f"unknown storage operation {code}")

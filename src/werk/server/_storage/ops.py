"""The storage's change records: what the manager did, as small tuples.

A change is ``(code, params)``. The SQLite storage journals lists of them (one record per
event-loop turn, in the bytes of :func:`encode_ops`), later folds them into the database
with :func:`write_ops`, and at boot applies the ones not yet folded to what it read from
the database with :func:`apply_ops`. Both interpret the same codes, so the journal and the
database can never disagree on what a change means.

The record encoding is ours, not ``marshal`` or ``pickle``, whose bytes may change between
Python versions: a journal left by a crash must read the same after an upgrade. Each
change is its code byte and its fields in a fixed little-endian layout; strings are UTF-8
(``surrogatepass``: a lone surrogate decoded from a client's JSON survives the trip),
prefixed with their byte length. Changing the layout means bumping the journal's
:data:`~werk.server._storage.journal.FORMAT_VERSION`.

Example::

    >>> state = LoadedState()
    >>> ops = decode_ops(encode_ops([(INSERT, (1, 0, "default", 0.0, "jid-1", b"{}", 0.0)),
    ...                              (COUNTER, ("processed", 1)),
    ...                              (RECORD_PUT, ("batch", "b-1", b"{}"))]))
    >>> apply_ops(ops, state)
    >>> [e.jid for e in state.entries.values()], state.counters, state.records
    (['jid-1'], {'processed': 1}, {'batch': {'b-1': b'{}'}})
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass, field
from typing import Any

from werk._errors import FaktoryError
from werk.server._storage.base import QUEUE, StoredEntry

__all__ = [
    "CLEAR_KIND",
    "COUNTER",
    "DELETE",
    "FLUSH_ALL",
    "INSERT",
    "QUEUE_FORGET",
    "QUEUE_KNOWN",
    "RECORD_CLEAR",
    "RECORD_DELETE",
    "RECORD_PUT",
    "JournalFormatError",
    "LoadedState",
    "Op",
    "apply_ops",
    "decode_ops",
    "encode_ops",
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
# Since journal format 3: the records of server extensions.
RECORD_PUT = 7  # (space, key, value)
RECORD_DELETE = 8  # (space, key)
RECORD_CLEAR = 9  # (space,)


class JournalFormatError(FaktoryError, ValueError):
    """A journal this version of werk cannot read: refused rather than guessed at."""


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
    RECORD_PUT: (
        "INSERT INTO records (space, key, value) VALUES (?, ?, ?) "
        "ON CONFLICT(space, key) DO UPDATE SET value = excluded.value",
    ),
    RECORD_DELETE: ("DELETE FROM records WHERE space = ? AND key = ?",),
    RECORD_CLEAR: ("DELETE FROM records WHERE space = ?",),
}


# Rows per statement for runs of inserts and deletes: one statement (one step of SQLite,
# one release of the interpreter lock) per hundreds of changes instead of one per change,
# within the 999 parameters old SQLite builds allow.
_INSERT_ROWS = 140
_DELETE_IDS = 900
_LONG_RUN = 64  # shorter runs: executemany, one prepared statement


def _insert_sql(rows: int) -> str:
    head = _SQL[INSERT][0].partition(" VALUES ")[0]
    return head + " VALUES " + ",".join(["(?,?,?,?,?,?,?)"] * rows)


def _delete_sql(ids: int) -> str:
    return "DELETE FROM entries WHERE id IN (" + ",".join(["?"] * ids) + ")"


_FULL_INSERT = _insert_sql(_INSERT_ROWS)
_FULL_DELETE = _delete_sql(_DELETE_IDS)


def _write_run(db: sqlite3.Connection, code: int, run: list[Op]) -> None:
    # A run of one kind: inserts have distinct ids and deletes commute, so a long run can
    # go in a few big statements; counter deltas add up per name.
    if code == INSERT:
        # Payloads go in as bytearrays: the sqlite3 module binds those (like int, float
        # and str) directly, while bytes go through its adapter lookup, a third of the
        # cost of a row. The rows past the last full statement go one by one through the
        # one-row statement: a statement of another length would be parsed anew.
        full = len(run) - len(run) % _INSERT_ROWS
        for start in range(0, full, _INSERT_ROWS):
            db.execute(
                _FULL_INSERT,
                [
                    value
                    for _, p in run[start : start + _INSERT_ROWS]
                    for value in (p[0], p[1], p[2], p[3], p[4], bytearray(p[5]), p[6])
                ],
            )
        if full < len(run):
            db.executemany(
                _SQL[INSERT][0],
                [(p[0], p[1], p[2], p[3], p[4], bytearray(p[5]), p[6]) for _, p in run[full:]],
            )
    elif code in (RECORD_PUT, RECORD_DELETE) or (
        len(run) < _LONG_RUN and code in (DELETE, QUEUE_KNOWN, COUNTER)
    ):
        if len(run) == 1:
            db.execute(_SQL[code][0], run[0][1])
        else:
            db.executemany(_SQL[code][0], [op[1] for op in run])
    elif code == DELETE:
        for start in range(0, len(run), _DELETE_IDS):
            chunk = run[start : start + _DELETE_IDS]
            sql = _FULL_DELETE if len(chunk) == _DELETE_IDS else _delete_sql(len(chunk))
            db.execute(sql, [params[0] for _, params in chunk])
    elif code == COUNTER:
        totals: dict[str, int] = {}
        for _, (name, delta) in run:
            totals[name] = totals.get(name, 0) + delta
        db.executemany(_SQL[COUNTER][0], list(totals.items()))
    else:
        for _, params in run:
            for sql in _SQL[code]:
                db.execute(sql, params if "?" in sql else ())


def write_ops(db: sqlite3.Connection, ops: list[Op]) -> None:
    """Execute ``ops`` in order inside the caller's transaction (runs of one kind batched).

    Record changes touch only their own table, so they are taken out of the stream and
    written apart, each record once with its last value: a record rewritten at every job
    change (a batch's counters) would otherwise cut the runs of inserts and deletes into
    single statements.
    """
    records = [op for op in ops if op[0] >= RECORD_PUT]
    if records:
        _write_records(db, records)
        ops = [op for op in ops if op[0] < RECORD_PUT]
    i, n = 0, len(ops)
    while i < n:
        code = ops[i][0]
        j = i + 1
        while j < n and ops[j][0] == code:
            j += 1
        _write_run(db, code, ops[i:j])
        i = j


def _write_records(db: sqlite3.Connection, ops: list[Op]) -> None:
    # The last value of each record (None: deleted), a cleared space emptied first.
    last: dict[tuple[str, str], bytes | None] = {}
    for code, params in ops:
        if code == RECORD_PUT:
            space, key, value = params
            last[space, key] = value
        elif code == RECORD_DELETE:
            last[params[0], params[1]] = None
        else:  # RECORD_CLEAR: what came before in that space is gone
            db.execute(_SQL[RECORD_CLEAR][0], params)
            for pair in [pair for pair in last if pair[0] == params[0]]:
                del last[pair]
    puts = [(s, k, v) for (s, k), v in last.items() if v is not None]
    deletes = [(s, k) for (s, k), v in last.items() if v is None]
    if deletes:
        db.executemany(_SQL[RECORD_DELETE][0], deletes)
    if puts:
        db.executemany(_SQL[RECORD_PUT][0], puts)


@dataclass
class LoadedState:
    """What a storage holds, as read from the database (before the journal is applied)."""

    entries: dict[int, StoredEntry] = field(default_factory=dict)
    queues: dict[str, bool] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    records: dict[str, dict[str, bytes]] = field(default_factory=dict)


def apply_ops(ops: list[Op], state: LoadedState) -> None:
    """Apply ``ops`` to state read from the database (what :func:`write_ops` would do)."""
    entries, queues, counters, records = state.entries, state.queues, state.counters, state.records
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
        elif code == RECORD_PUT:
            records.setdefault(p[0], {})[p[1]] = p[2]
        elif code == RECORD_DELETE:
            space = records.get(p[0])
            if space is not None:
                space.pop(p[1], None)
                if not space:
                    del records[p[0]]
        elif code == RECORD_CLEAR:
            records.pop(p[0], None)
        else:
            raise ValueError(f"unknown storage operation {code}")


# Fixed parts of each change; strings and payloads follow, their lengths in the fixed part.
_INSERT = struct.Struct("<BqqddIII")  # code, id, kind, score, since, len(name, jid, payload)
_INT = struct.Struct("<Bq")  # DELETE (id), CLEAR_KIND (kind)
_TEXT = struct.Struct("<BI")  # QUEUE_FORGET: len(name)
_TEXT_INT = struct.Struct("<BqI")  # QUEUE_KNOWN (paused), COUNTER (delta): int, len(name)
_RECORD = struct.Struct("<BIII")  # RECORD_PUT, RECORD_DELETE: len(space, key, value)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def encode_ops(ops: list[Op]) -> bytes:
    """The journal record of ``ops`` (read back by :func:`decode_ops`)."""
    if len(ops) == 1 and ops[0][0] == INSERT:  # a lone PUSH's record: no loop, no list
        p = ops[0][1]
        name = p[2].encode("utf-8", "surrogatepass")
        jid, payload = p[4].encode("utf-8", "surrogatepass"), p[5]
        head = _INSERT.pack(INSERT, p[0], p[1], p[3], p[6], len(name), len(jid), len(payload))
        return b"".join((head, name, jid, payload))
    parts: list[bytes] = []
    add = parts.append
    for code, p in ops:
        if code == INSERT:
            name, jid, payload = _utf8(p[2]), _utf8(p[4]), p[5]
            add(_INSERT.pack(code, p[0], p[1], p[3], p[6], len(name), len(jid), len(payload)))
            add(name)
            add(jid)
            add(payload)
        elif code in (DELETE, CLEAR_KIND):
            add(_INT.pack(code, p[0]))
        elif code in (QUEUE_KNOWN, COUNTER):
            name = _utf8(p[0])
            add(_TEXT_INT.pack(code, p[1], len(name)))
            add(name)
        elif code in (QUEUE_FORGET, RECORD_CLEAR):
            name = _utf8(p[0])
            add(_TEXT.pack(code, len(name)))
            add(name)
        elif code == FLUSH_ALL:
            add(bytes((code,)))
        elif code in (RECORD_PUT, RECORD_DELETE):
            space, key = _utf8(p[0]), _utf8(p[1])
            value = p[2] if code == RECORD_PUT else b""
            add(_RECORD.pack(code, len(space), len(key), len(value)))
            add(space)
            add(key)
            add(value)
        else:
            raise ValueError(f"unknown storage operation {code}")
    return b"".join(parts)


def decode_ops(body: bytes) -> list[Op]:
    """The changes in one journal record; :class:`JournalFormatError` if it is not one."""
    ops: list[Op] = []
    pos, end = 0, len(body)
    try:
        while pos < end:
            code = body[pos]
            if code == INSERT:
                _, eid, kind, score, since, n, j, k = _INSERT.unpack_from(body, pos)
                pos += _INSERT.size
                name = body[pos : pos + n].decode("utf-8", "surrogatepass")
                jid = body[pos + n : pos + n + j].decode("utf-8", "surrogatepass")
                payload = body[pos + n + j : pos + n + j + k]
                pos += n + j + k
                ops.append((code, (eid, kind, name, score, jid, payload, since)))
            elif code in (DELETE, CLEAR_KIND):
                ops.append((code, (_INT.unpack_from(body, pos)[1],)))
                pos += _INT.size
            elif code in (QUEUE_KNOWN, COUNTER):
                _, number, n = _TEXT_INT.unpack_from(body, pos)
                pos += _TEXT_INT.size
                name = body[pos : pos + n].decode("utf-8", "surrogatepass")
                pos += n
                ops.append((code, (name, number)))
            elif code in (QUEUE_FORGET, RECORD_CLEAR):
                n = _TEXT.unpack_from(body, pos)[1]
                pos += _TEXT.size
                ops.append((code, (body[pos : pos + n].decode("utf-8", "surrogatepass"),)))
                pos += n
            elif code == FLUSH_ALL:
                ops.append((code, ()))
                pos += 1
            elif code in (RECORD_PUT, RECORD_DELETE):
                _, n, j, k = _RECORD.unpack_from(body, pos)
                pos += _RECORD.size
                space = body[pos : pos + n].decode("utf-8", "surrogatepass")
                key = body[pos + n : pos + n + j].decode("utf-8", "surrogatepass")
                value = body[pos + n + j : pos + n + j + k]
                pos += n + j + k
                ops.append((code, (space, key, value) if code == RECORD_PUT else (space, key)))
            else:
                raise JournalFormatError(f"unknown journal change code {code} at byte {pos}")
    except (struct.error, UnicodeDecodeError) as exc:
        raise JournalFormatError(f"malformed journal change at byte {pos}: {exc}") from None
    if pos != end:
        raise JournalFormatError(f"journal change runs past the record's end ({pos} > {end})")
    return ops

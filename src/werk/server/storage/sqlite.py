"""SQLite storage (the default): every change is in a file before the client hears +OK.

One file ``werk.sqlite3`` in the data directory, WAL journal, ``synchronous=NORMAL`` by
default: a committed transaction survives ``kill -9`` of the server (it is in the WAL,
which the OS holds even if the process dies); ``synchronous="FULL"`` also survives power
loss at some cost in speed.

Group commit: the changes made while the event loop handles one batch of ready sockets
are written in one transaction at the start of the next loop turn, and every command
that made them gets its reply only then. Many connections pushing at once therefore share
one commit each turn.

If a commit fails (disk full, I/O error), the transaction is rolled back, every waiting
command is answered ``-ERR <detail>``, and ``on_error`` lets the server reload its memory
from the file so that nothing that was not stored is served.

Example::

    >>> import tempfile, os
    >>> store = SQLiteStorage(os.path.join(tempfile.mkdtemp(), "werk.sqlite3"))
    >>> store.queue_push(1, "default", "jid-0000001", b'{"jid":"jid-0000001"}')
    >>> store.flush()
    >>> [e.jid for e in store.load().entries]
    ['jid-0000001']
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from werk.server.storage.base import QUEUE, Snapshot, StoredEntry

__all__ = ["SQLiteStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    name TEXT NOT NULL,
    score REAL NOT NULL,
    jid TEXT NOT NULL,
    payload BLOB NOT NULL,
    since REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_INSERT = "INSERT INTO entries (id, kind, name, score, jid, payload, since) VALUES (?,?,?,?,?,?,?)"
_DELETE = "DELETE FROM entries WHERE id = ?"
_QUEUE_KNOWN = (
    "INSERT INTO queues (name, paused) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET paused = excluded.paused"
)
_COUNTER = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
)


class SQLiteStorage:
    """Durable storage in one SQLite file, with group commit (see the module docstring)."""

    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        max_pages: int | None = None,
    ) -> None:
        self.location = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.location))
        os.makedirs(parent, exist_ok=True)
        self._db = sqlite3.connect(self.location, isolation_level=None, check_same_thread=False)
        # One writer, this process: exclusive locking skips the per-transaction file locks
        # and shared-memory index (commits cost a third). Other processes cannot read the
        # file while the server runs; the lock dies with the process, even on kill -9.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.executescript(_SCHEMA)
        if max_pages is not None:
            # Lets tests make the disk "full" without filling a real disk.
            self._db.execute(f"PRAGMA max_page_count={int(max_pages)}")
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._future: asyncio.Future[None] | None = None
        self._callbacks: list[Callable[[BaseException | None], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self.on_error: Callable[[BaseException], None] | None = None
        self._closed = False
        self.commits = 0
        self.commit_seconds = 0.0  # time spent committing (for the stop log and benchmarks)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit in group on ``loop`` (the server's event loop) from now on."""
        self._loop = loop

    # -- reading ---------------------------------------------------------------------

    def load(self) -> Snapshot:
        """Everything stored (entries in id order: FIFO within each queue)."""
        snap = Snapshot()
        rows = self._db.execute(
            "SELECT id, kind, name, score, jid, payload, since FROM entries ORDER BY id"
        )
        snap.entries = [StoredEntry(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6]) for r in rows]
        snap.queues = {n: bool(p) for n, p in self._db.execute("SELECT name, paused FROM queues")}
        snap.counters = dict(self._db.execute("SELECT name, value FROM counters"))
        return snap

    # -- recording changes -----------------------------------------------------------

    def _add(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending.append((sql, params))
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._commit_turn)

    def queue_known(self, name: str, paused: bool) -> None:
        """Remember a queue name and its paused flag."""
        self._add(_QUEUE_KNOWN, (name, int(paused)))

    def queue_forget(self, name: str) -> None:
        """Forget a queue and delete its jobs."""
        self._add("DELETE FROM entries WHERE kind = ? AND name = ?", (QUEUE, name))
        self._add("DELETE FROM queues WHERE name = ?", (name,))

    def queue_push(self, eid: int, queue: str, jid: str, payload: bytes) -> None:
        """Append a job to a queue."""
        self._add(_INSERT, (eid, QUEUE, queue, 0.0, jid, payload, 0.0))

    def entry_add(
        self, eid: int, kind: int, name: str, score: float, jid: str, payload: bytes, since: float
    ) -> None:
        """Add a sorted-set entry or a reservation."""
        self._add(_INSERT, (eid, kind, name, score, jid, payload, since))

    def entry_remove(self, eid: int) -> None:
        """Delete one entry."""
        self._add(_DELETE, (eid,))

    def clear_kind(self, kind: int) -> None:
        """Delete every entry of one kind."""
        self._add("DELETE FROM entries WHERE kind = ?", (kind,))

    def counter_add(self, name: str, delta: int) -> None:
        """Add to a counter."""
        self._add(_COUNTER, (name, delta))

    def flush_all(self) -> None:
        """Delete all jobs, counters, queue names and paused flags."""
        self._add("DELETE FROM entries", ())
        self._add("DELETE FROM counters", ())
        self._add("DELETE FROM queues", ())

    # -- committing ------------------------------------------------------------------

    def barrier(self) -> asyncio.Future[None] | None:
        """A future for the commit of everything recorded so far (None if nothing is)."""
        if not self._pending:
            return None
        if self._loop is None:
            self.flush()
            return None
        if self._future is None:
            self._future = self._loop.create_future()
        return self._future

    def after_commit(self, callback: Callable[[BaseException | None], None]) -> bool:
        """Call ``callback(error_or_None)`` right after the pending changes are committed.

        Returns False (and never calls it) when nothing is pending. Cheaper than
        :meth:`barrier`: no future, no extra event-loop turn.
        """
        if not self._pending:
            return False
        if self._loop is None:
            self.flush()
            return False
        self._callbacks.append(callback)
        return True

    def _commit_turn(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        future, self._future = self._future, None
        callbacks, self._callbacks = self._callbacks, []
        error: BaseException | None = None
        try:
            self.flush()
        except Exception as exc:
            error = exc
            if self.on_error is not None:
                self.on_error(exc)
        for callback in callbacks:
            callback(error)
        if future is not None and not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
                future.exception()  # retrieved: nobody is warned about it

    def flush(self) -> None:
        """Write every pending change in one transaction; on error roll back and raise."""
        ops, self._pending = self._pending, []
        if not ops:
            return
        db = self._db
        started = time.perf_counter()
        try:
            self._write(db, ops)
        finally:
            self.commit_seconds += time.perf_counter() - started

    def _write(self, db: sqlite3.Connection, ops: list[tuple[str, tuple[Any, ...]]]) -> None:
        if len(ops) == 1:
            # One statement is its own transaction: skip BEGIN/COMMIT (a third of the cost
            # of a lone PUSH from one connection).
            db.execute(ops[0][0], ops[0][1])
            self.commits += 1
            return
        try:
            db.execute("BEGIN")
            i, n = 0, len(ops)
            while i < n:
                sql = ops[i][0]
                j = i + 1
                while j < n and ops[j][0] is sql:
                    j += 1
                if j - i == 1:
                    db.execute(sql, ops[i][1])
                else:
                    db.executemany(sql, [op[1] for op in ops[i:j]])
                i = j
            db.execute("COMMIT")
            self.commits += 1
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Commit pending changes, checkpoint the WAL and close the file."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

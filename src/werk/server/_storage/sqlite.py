"""SQLite storage (the default): every change is on disk before the client hears +OK.

Two files in the data directory: ``werk.sqlite3`` (WAL mode) and its journal
``werk.sqlite3.journal`` (:class:`~werk.server._storage.journal.Journal`).

Group commit: the changes made while the event loop handles one batch of ready sockets
are appended to the journal as one record (one ``os.write``) at the start of the next loop
turn, and every command that made them gets its reply only then. Once written, they
survive ``kill -9`` of the server (the OS holds them even if the process dies);
``synchronous="FULL"`` adds an ``fdatasync`` per record (and SQLite's FULL mode), which
also survives power loss at some cost in speed.

Folding: every second (or every :data:`FOLD_OPS` changes) the journaled changes are
written into SQLite in one transaction, which also records the journal's generation,
and the journal is emptied. A crash between the two is harmless: at start-up a journal
whose generation the database already has is ignored; any other journal is folded in
(its torn last record, if a crash cut one, is dropped: it was never acknowledged).
Folding costs a few microseconds per change, against some 30 for a commit per command.

A fold of :data:`FOLD_OPS` changes takes some milliseconds and runs on the event loop.
A fold holding a change that deletes a whole queue or set (QUEUE REMOVE, MUTATE clear,
FLUSH) can take SQLite a second for a million jobs: that one runs in a thread of its own.
The journal is renamed aside (``werk.sqlite3.journal.folding``), new changes go to a
fresh journal of the next generation, and the thread writes the aside changes into the
database while SQLite lets go of the interpreter; on success the aside file is deleted.
Only this thread touches the database meanwhile: :meth:`load`, :meth:`fold` and
:meth:`close` wait for it first. (Every fold could run so, but a thread that takes turns
with the event loop for the interpreter spends several times the CPU of a fold in place.)

If a journal write fails (disk full, I/O error), the record is cut off again, every
waiting command is answered ``-ERR <detail>``, and ``on_error`` lets the server reload its
memory from what is stored so that nothing that was not stored is served. If a fold
fails, nothing is lost: the changes stay in the journal and the next fold tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable

from werk._errors import ConfigurationError
from werk.server._storage.base import QUEUE, Snapshot, Storage, StoredEntry
from werk.server._storage.journal import Journal
from werk.server._storage.ops import (
    CLEAR_KIND,
    COUNTER,
    DELETE,
    FLUSH_ALL,
    INSERT,
    QUEUE_FORGET,
    QUEUE_KNOWN,
    RECORD_CLEAR,
    RECORD_DELETE,
    RECORD_PUT,
    LoadedState,
    Op,
    apply_ops,
    decode_ops,
    encode_ops,
    write_ops,
)

__all__ = ["FOLD_OPS", "FOLD_SECONDS", "SQLiteStorage"]

log = logging.getLogger("werk.server")

FOLD_OPS = 2_000  # journaled changes that trigger a fold at once (some milliseconds)
FOLD_SECONDS = 1.0  # fold at the latest this long after the first unfolded change

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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (space, key)
) WITHOUT ROWID;
"""
_FOLDED = "journal_generation"  # meta key: the last journal generation folded in
_READ_AHEAD = (
    f"SELECT id, payload FROM entries WHERE id >= ? AND kind = {QUEUE} ORDER BY id LIMIT 64"
)


class SQLiteStorage(Storage):
    """Durable storage: a journal for every change, folded into SQLite (see the module
    docstring)."""

    durable = True
    keeps_queued = True

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
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self._db = sqlite3.connect(self.location, isolation_level=None, check_same_thread=False)
        # One writer, this process: exclusive locking skips the per-transaction file locks
        # and shared-memory index. Other processes cannot read the file while the server
        # runs; the lock dies with the process, even on kill -9.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        # Room for the inner pages of a table of millions of queued jobs (under 4 MB for
        # five million) besides the pages a fold and the fetches touch: a backlog that
        # deep would otherwise cost every fetch and fold reads from the OS page cache.
        self._db.execute("PRAGMA cache_size=-8192")
        self._db.executescript(_SCHEMA)
        if max_pages is not None:
            # Lets tests make the database "full" without filling a real disk.
            self._db.execute(f"PRAGMA max_page_count={int(max_pages)}")
        self._pending: list[Op] = []
        # Where in _pending the put of each record is: a record written again in the same
        # turn (a batch's counters, at every member of a PUSHB) replaces its put in place.
        self._record_at: dict[tuple[str, str], int] = {}
        self._unfolded: list[Op] = []  # journaled, not yet in the database
        # Queued jobs not yet folded into the database, by id: the INSERT's parameters
        # (identity tells a job put back from its first insert).
        self._queued: dict[int, tuple[object, ...]] = {}
        self._ahead: dict[int, bytes] = {}  # queued jobs' bytes read ahead of their fetch
        # The aside journal's changes, being folded by _fold_thread (or to be retried).
        self._aside = self.location + ".journal.folding"
        self._folding: list[Op] | None = None
        self._folding_generation = 0
        self._fold_thread: threading.Thread | None = None
        self._fold_error: BaseException | None = None
        self._fold_again = False
        # A change that deletes a whole queue or set is pending, or journaled and unfolded.
        self._pending_bulk = False
        self._bulk = False
        self._callbacks: list[Callable[[BaseException | None], None]] = []
        self._future: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._early = False  # an early commit was made this loop turn
        self._fold_timer: asyncio.TimerHandle | None = None
        self.on_error: Callable[[BaseException], None] | None = None
        self._closed = False
        self.commits = 0  # journal records written
        self.commit_seconds = 0.0  # time spent writing them
        self.observe_commit: Callable[[float], None] | None = None  # /metrics' histogram
        self.folds = 0
        self.fold_seconds = 0.0
        self._journal = Journal(
            self.location + ".journal", sync=synchronous.upper() in ("FULL", "EXTRA")
        )
        try:
            self._recover()
        except BaseException:
            self._db.close()  # releases the exclusive lock: the caller may retry
            raise

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit in group on ``loop`` (the server's event loop) from now on."""
        self._loop = loop

    def _recover(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_FOLDED,)).fetchone()
        folded = row[0] if row else 0
        if os.path.exists(self._aside):  # a crash came while it was being folded
            aside = Journal(self._aside)
            generation, records = aside.open(next_generation=folded + 1)
            aside.close()
            if generation > folded:
                self._folding = [op for body in records for op in decode_ops(body)]
                self._folding_generation = generation
                folded = max(folded, generation)  # the active journal is newer still
        generation, records = self._journal.open(next_generation=folded + 1)
        if generation <= folded:  # folded before a crash cut the reset short
            self._journal.reset(folded + 1)
            records = []
        for body in records:
            self._unfolded.extend(decode_ops(body))
        for code, params in (self._folding or []) + self._unfolded:
            if code == INSERT and params[1] == QUEUE:
                self._queued[params[0]] = params
        if self._folding is None and not self._unfolded:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._aside)
            return
        try:
            self.fold()
        except sqlite3.Error as exc:
            # Nothing is lost: the changes stay journaled and load() applies them.
            log.error("cannot fold the journal into %s: %s", self.location, exc)

    # -- reading ---------------------------------------------------------------------

    def load(self) -> Snapshot:
        """Everything stored (entries in id order: FIFO within each queue)."""
        self._join_fold()
        self._ahead = {}  # ids may be given out again after a reload
        db = self._db
        rows = db.execute(
            "SELECT id, kind, name, score, jid, payload, since FROM entries ORDER BY id"
        )
        state = LoadedState(
            entries={
                r[0]: StoredEntry(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6]) for r in rows
            },
            queues={n: bool(p) for n, p in db.execute("SELECT name, paused FROM queues")},
            counters=dict(db.execute("SELECT name, value FROM counters")),
        )
        for space, key, value in db.execute("SELECT space, key, value FROM records"):
            state.records.setdefault(space, {})[key] = bytes(value)
        if self._folding:
            apply_ops(self._folding, state)
        if self._unfolded:
            apply_ops(self._unfolded, state)
        entries = state.entries
        if self._folding or self._unfolded:  # a job put back has its old, lower id
            entries = dict(sorted(entries.items()))
        return Snapshot(list(entries.values()), state.queues, state.counters, state.records)

    # -- recording changes -----------------------------------------------------------

    def _add(self, op: Op) -> None:
        self._pending.append(op)
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._commit_turn)

    def queue_known(self, name: str, paused: bool) -> None:
        """Remember a queue name and its paused flag."""
        self._add((QUEUE_KNOWN, (name, int(paused))))

    def queue_forget(self, name: str) -> None:
        """Forget a queue and delete its jobs."""
        self._pending_bulk = True
        self._add((QUEUE_FORGET, (name,)))

    def queue_push(self, eid: int, queue: str, jid: str, payload: bytes) -> None:
        """Append a job to a queue."""
        params = (eid, QUEUE, queue, 0.0, jid, payload, 0.0)
        self._queued[eid] = params
        self._pending.append((INSERT, params))  # _add(), inlined: every PUSH comes here
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._commit_turn)

    def queued_payload(self, eid: int) -> bytes:
        """A queued job's bytes: from memory until folded, then from the database."""
        params = self._queued.get(eid)
        if params is not None:
            return params[5]  # type: ignore[return-value]
        payload = self._ahead.pop(eid, None)
        if payload is not None:
            return payload
        if self._fold_thread is not None:
            # The fold's thread holds the connection; a bulk fold is rare.
            self._join_fold()
        # The jobs queued after this one are most likely fetched next: one statement reads
        # them too (an id's bytes never change, so what is read ahead cannot go stale).
        rows = self._db.execute(_READ_AHEAD, (eid,)).fetchall()
        if not rows or rows[0][0] != eid:
            raise KeyError(eid)
        self._ahead = dict(rows[1:])
        return bytes(rows[0][1])

    def _forget_queued(self, ops: list[Op]) -> None:
        # Folded: the database has these jobs now (unless a later change is still to come).
        queued = self._queued
        for code, params in ops:
            if code == INSERT and params[1] == QUEUE and queued.get(params[0]) is params:
                del queued[params[0]]

    def entry_add(
        self, eid: int, kind: int, name: str, score: float, jid: str, payload: bytes, since: float
    ) -> None:
        """Add a sorted-set entry or a reservation."""
        self._add((INSERT, (eid, kind, name, score, jid, payload, since)))

    def entry_remove(self, eid: int) -> None:
        """Delete one entry."""
        self._add((DELETE, (eid,)))

    def clear_kind(self, kind: int) -> None:
        """Delete every entry of one kind."""
        self._pending_bulk = True
        self._add((CLEAR_KIND, (kind,)))

    def counter_add(self, name: str, delta: int) -> None:
        """Add to a counter."""
        self._add((COUNTER, (name, delta)))

    def flush_all(self) -> None:
        """Delete all jobs, counters, queue names and paused flags."""
        self._pending_bulk = True
        self._add((FLUSH_ALL, ()))

    def record_put(self, space: str, key: str, value: bytes) -> None:
        """Store an extension's record."""
        at = self._record_at.get((space, key))
        if at is not None:  # the same commit either way: only the last value matters
            self._pending[at] = (RECORD_PUT, (space, key, value))
            return
        self._record_at[space, key] = len(self._pending)
        self._add((RECORD_PUT, (space, key, value)))

    def record_delete(self, space: str, key: str) -> None:
        """Delete an extension's record."""
        self._record_at.pop((space, key), None)
        self._add((RECORD_DELETE, (space, key)))

    def record_clear(self, space: str) -> None:
        """Delete every record of a space."""
        self._pending_bulk = True
        for pair in [pair for pair in self._record_at if pair[0] == space]:
            del self._record_at[pair]
        self._add((RECORD_CLEAR, (space,)))

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

    def commit_early(self) -> None:
        """Commit now what commands wait for, once per loop turn (see
        :meth:`Storage.commit_early`); the turn's other changes wait for its group commit."""
        if self._early or not self._callbacks or self._loop is None:
            return
        self._commit_turn()
        # Until the scheduled group commit runs (first thing next turn): the other
        # connections read in this turn share that one.
        self._early = True

    def _commit_turn(self) -> None:
        self._scheduled = False
        self._early = False
        if self._closed or not (self._pending or self._callbacks or self._future is not None):
            return  # committed early (a lone command): this turn only resets the flags
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
        """Journal every pending change now (durable once this returns); raise on failure,
        in which case none of them is stored."""
        ops, self._pending = self._pending, []
        self._record_at.clear()
        bulk, self._pending_bulk = self._pending_bulk, False
        if not ops:
            return
        started = time.perf_counter()
        try:
            self._journal.append(encode_ops(ops))
        except BaseException:
            self._forget_queued(ops)  # not stored: the server reloads what is
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.commit_seconds += elapsed
        self.commits += 1
        if self.observe_commit is not None:
            self.observe_commit(elapsed)
        unfolded = self._unfolded
        unfolded += ops
        self._bulk = self._bulk or bulk
        if len(unfolded) >= FOLD_OPS:
            self._fold_soon()
        elif self._fold_timer is None and self._loop is not None:
            self._fold_timer = self._loop.call_later(FOLD_SECONDS, self._fold_soon)

    def _fold_soon(self) -> None:
        if self._fold_timer is not None:
            self._fold_timer.cancel()
            self._fold_timer = None
        if self._closed:
            return
        if self._fold_thread is not None:
            self._fold_again = True  # once this one is done
            return
        if self._loop is None or (self._folding is None and not self._bulk):
            try:  # small (or no loop to keep free): fold right here
                self.fold()
            except (sqlite3.Error, OSError) as exc:
                log.error("cannot fold the journal into %s (kept): %s", self.location, exc)
                if self._loop is not None:
                    self._fold_timer = self._loop.call_later(FOLD_SECONDS, self._fold_soon)
            return
        if self._folding is None:
            if not self._unfolded:
                return
            try:
                self._journal = self._journal.rotate(self._aside)
            except OSError as exc:
                log.error("cannot set the journal aside for a fold (retrying): %s", exc)
                self._fold_timer = self._loop.call_later(FOLD_SECONDS, self._fold_soon)
                return
            self._folding, self._unfolded = self._unfolded, []
            self._folding_generation = self._journal.generation - 1
            self._bulk = False
        self._fold_again = False
        self._fold_error = None
        thread = threading.Thread(
            target=self._fold_in_thread,
            args=(self._folding, self._folding_generation),
            name="werk-fold",
            daemon=True,
        )
        self._fold_thread = thread
        thread.start()

    def _fold_in_thread(self, ops: list[Op], generation: int) -> None:
        try:
            self._write(ops, generation)
        except BaseException as exc:
            self._fold_error = exc
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: close() joined us
                loop.call_soon_threadsafe(self._fold_done)

    def _join_fold(self) -> None:
        """Wait for the background fold, if any, and take in its outcome."""
        thread, self._fold_thread = self._fold_thread, None
        if thread is None:
            return
        thread.join()
        if self._fold_error is None:
            self.folds += 1
            if self._folding:
                self._forget_queued(self._folding)
            self._folding = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._aside)
        else:
            log.error(
                "cannot fold the journal into %s (kept, retrying): %s",
                self.location,
                self._fold_error,
            )

    def _fold_done(self) -> None:
        self._join_fold()
        if self._closed or self._loop is None:
            return
        if self._folding is not None:  # it failed: the aside changes wait for a retry
            self._fold_timer = self._loop.call_later(FOLD_SECONDS, self._fold_soon)
        elif self._fold_again or len(self._unfolded) >= FOLD_OPS:
            self._fold_soon()
        elif self._unfolded and self._fold_timer is None:
            self._fold_timer = self._loop.call_later(FOLD_SECONDS, self._fold_soon)

    def _write(self, ops: list[Op], generation: int) -> None:
        db = self._db
        started = time.perf_counter()
        try:
            db.execute("BEGIN")
            write_ops(db, ops)
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (_FOLDED, generation),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            self.fold_seconds += time.perf_counter() - started

    def fold(self) -> None:
        """Write every journaled change into the database in one transaction, here and
        now, then empty the journal. Pending (not yet journaled) changes are not included."""
        self._join_fold()
        ops = (self._folding or []) + self._unfolded
        if not ops:
            return
        self._write(ops, self._journal.generation)
        self.folds += 1
        if self._pending:
            self._forget_queued(ops)
        else:  # nothing is left to fold: every queued job is in the database now
            self._queued.clear()
        self._folding = None
        self._unfolded = []
        self._bulk = False
        # Safe to crash from here on: the database knows these generations are folded.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._aside)
        self._journal.reset(self._journal.generation + 1)

    def close(self) -> None:
        """Journal and fold what is pending, checkpoint the WAL and close the files."""
        if self._closed:
            return
        self._join_fold()
        try:
            self.flush()
            self.fold()
        finally:
            self._closed = True
            if self._fold_timer is not None:
                self._fold_timer.cancel()
            self._journal.close()
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

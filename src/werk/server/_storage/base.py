"""The storage interface: a write-through log of the server's state, read back at boot.

The server keeps its hot state (queues, sets, reservations, counters) in memory and tells
the storage about every change. A durable storage (SQLite) gathers the changes of one
event-loop turn into one transaction ("group commit"); a command's reply is only written
after :meth:`Storage.barrier` says its changes are committed.

Entry kinds: ``QUEUE`` (``name`` = queue), ``SCHEDULED``, ``RETRIES``, ``DEAD`` and
``WORKING`` (``name`` = wid). Every entry has a server-wide increasing id, so entries of a
queue loaded in id order are in FIFO order.

Records: ``(space, key) -> bytes``, the durable state of server extensions (a batch, a
unique lock, a cron entry's last tick), written in the same group commit as the job
changes of the same loop turn.

Example::

    >>> from werk.server._storage import MemoryStorage
    >>> store = MemoryStorage()
    >>> store.queue_push(1, "default", "jid-0000001", b"{}")
    >>> store.barrier() is None          # memory: nothing to wait for
    True
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["DEAD", "QUEUE", "RETRIES", "SCHEDULED", "WORKING", "Snapshot", "Storage", "StoredEntry"]

QUEUE, SCHEDULED, RETRIES, DEAD, WORKING = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class StoredEntry:
    """One stored job: in a queue, a sorted set, or reserved (``WORKING``)."""

    id: int
    kind: int
    name: str
    score: float
    jid: str
    payload: bytes
    since: float = 0.0


@dataclass
class Snapshot:
    """Everything a storage holds, as loaded at boot."""

    entries: list[StoredEntry] = field(default_factory=list)
    queues: dict[str, bool] = field(default_factory=dict)  # name -> paused
    counters: dict[str, int] = field(default_factory=dict)
    records: dict[str, dict[str, bytes]] = field(default_factory=dict)  # space -> key -> value


class Storage:
    """What the server's manager needs from a storage. Every method is cheap and in-memory
    until :meth:`barrier` (or :meth:`flush`) commits the gathered changes.

    The methods here are documented no-ops that store nothing, which is exactly what
    :class:`~werk.server._storage.MemoryStorage` needs; a durable storage overrides them all.
    """

    durable: bool = False
    location: str = ""
    keeps_queued: bool = False
    """Whether :meth:`queued_payload` gives back the bytes of any job in a queue, so that
    the server's memory need not hold them."""

    def load(self) -> Snapshot:
        """Everything stored, for booting or re-syncing after a failed commit."""
        return Snapshot()

    def queue_known(self, name: str, paused: bool) -> None:
        """Remember a queue name and its paused flag."""

    def queue_forget(self, name: str) -> None:
        """Forget a queue name and delete its jobs (QUEUE REMOVE)."""

    def queue_push(self, eid: int, queue: str, jid: str, payload: bytes) -> None:
        """Append a job to a queue."""

    def queued_payload(self, eid: int) -> bytes:
        """The bytes of the queued job ``eid`` (only if :attr:`keeps_queued`); KeyError if
        there is no such job."""
        raise KeyError(eid)

    def entry_add(
        self, eid: int, kind: int, name: str, score: float, jid: str, payload: bytes, since: float
    ) -> None:
        """Add a job to a sorted set (or a reservation when ``kind`` is ``WORKING``)."""

    def entry_remove(self, eid: int) -> None:
        """Delete one entry (popped from a queue, removed from a set, reservation ended)."""

    def clear_kind(self, kind: int) -> None:
        """Delete every entry of one kind (MUTATE clear)."""

    def counter_add(self, name: str, delta: int) -> None:
        """Add to a statistics counter."""

    def flush_all(self) -> None:
        """Delete all jobs and counters and the paused flags (FLUSH); records stay."""

    def record_put(self, space: str, key: str, value: bytes) -> None:
        """Store a record, replacing the one with the same space and key."""

    def record_delete(self, space: str, key: str) -> None:
        """Delete a record, if there is one."""

    def record_clear(self, space: str) -> None:
        """Delete every record of a space."""

    def barrier(self) -> asyncio.Future[None] | None:
        """A future resolved when every change so far is committed, or None if nothing is
        pending (nothing ever is here)."""
        return None

    def after_commit(self, callback: Callable[[BaseException | None], None]) -> bool:
        """Call ``callback(error)`` once everything recorded so far is committed; False
        (callback never called) when nothing is pending, as here."""
        return False

    def commit_early(self) -> None:
        """Commit now, if this is the loop turn's first early commit, what the commands
        handled so far are waiting for (a connection calls it when it has read all it
        can): a lone client's reply then waits for no further loop turn, while the
        commands of other clients in the same turn still share one commit."""

    def flush(self) -> None:
        """Commit every pending change now (raises the storage's error on failure)."""

    def close(self) -> None:
        """Commit what is pending and release the storage."""

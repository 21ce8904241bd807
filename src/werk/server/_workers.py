"""The worker registry: one record per ``wid``, its connections, heartbeat and state.

A worker is created by the first HELLO carrying its wid, joined by later connections
with the same wid, and deleted when its last connection closes or when it has not sent
BEAT for 60 s (its connections are then closed). State moves forward only:
``running -> quiet -> terminate``. Quiet/terminate is looked up by wid (the real server
checks only the first connection's copy).

Example::

    >>> reg = WorkerRegistry()
    >>> w = reg.register("w1", now=0.0, conn=None, hostname="h", pid=1, labels=[])
    >>> reg.heartbeat("w1", "quiet", 1024, now=5.0).state
    'quiet'
    >>> reg.heartbeat("w1", "running", 1024, now=6.0).state
    'quiet'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Closable", "Worker", "WorkerRegistry"]

RUNNING, QUIET, TERMINATE = "", "quiet", "terminate"
_ORDER = {RUNNING: 0, QUIET: 1, TERMINATE: 2}
HEARTBEAT_EXPIRY = 60.0


class Closable(Protocol):
    """A connection the registry can close (the TCP layer's connection object)."""

    def close(self) -> None:
        """Close the connection."""
        ...


class Worker:
    """One worker process (one wid)."""

    __slots__ = (
        "connections",
        "hostname",
        "labels",
        "last_beat",
        "pid",
        "rss_kb",
        "started_at",
        "state",
        "wid",
    )

    def __init__(self, wid: str, now: float, hostname: str, pid: int, labels: list[str]) -> None:
        self.wid = wid
        self.hostname = hostname
        self.pid = pid
        self.labels = labels
        self.started_at = now
        self.last_beat = now
        self.rss_kb = 0
        self.state = RUNNING
        self.connections: set[Any] = set()

    def signal(self, state: str) -> None:
        """Move to ``quiet`` or ``terminate``; never backwards."""
        if state in _ORDER and _ORDER[state] > _ORDER[self.state]:
            self.state = state

    @property
    def quiet(self) -> bool:
        """True once the worker is quiet or terminating: FETCH gets no jobs."""
        return self.state != RUNNING

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (what tests and tools inspect)."""
        return {
            "wid": self.wid,
            "hostname": self.hostname,
            "pid": self.pid,
            "labels": list(self.labels),
            "started_at": self.started_at,
            "last_beat": self.last_beat,
            "rss_kb": self.rss_kb,
            "state": self.state or "running",
            "connections": len(self.connections),
        }


class WorkerRegistry:
    """Every registered worker by wid (see the module docstring)."""

    def __init__(self) -> None:
        self.workers: dict[str, Worker] = {}
        self.reaped = 0
        # Told ``(wid, reaped)`` when a worker leaves (the manager's extensions listen).
        self.on_gone: Callable[[str, bool], None] | None = None

    def __len__(self) -> int:
        return len(self.workers)

    def register(
        self, wid: str, *, now: float, conn: Any, hostname: str, pid: int, labels: list[str]
    ) -> Worker:
        """Create the wid's record, or join it (keeping the first registration's data)."""
        worker = self.workers.get(wid)
        if worker is None:
            worker = Worker(wid, now, hostname, pid, labels)
            self.workers[wid] = worker
        if conn is not None:
            worker.connections.add(conn)
        return worker

    def remove_connection(self, wid: str, conn: Any) -> None:
        """Forget a closed connection; the worker goes with its last connection."""
        worker = self.workers.get(wid)
        if worker is None or conn not in worker.connections:
            return
        worker.connections.discard(conn)
        if not worker.connections:
            del self.workers[wid]
            if self.on_gone is not None:
                self.on_gone(wid, False)

    def heartbeat(self, wid: str, current_state: str, rss_kb: int, *, now: float) -> Worker | None:
        """Apply a BEAT; None when the wid is not registered."""
        worker = self.workers.get(wid)
        if worker is None:
            return None
        worker.rss_kb = rss_kb
        worker.last_beat = now
        if current_state:
            worker.signal(current_state if current_state in (QUIET, TERMINATE) else RUNNING)
        return worker

    def is_quiet(self, wid: str) -> bool:
        """True when the wid is registered and quiet or terminating."""
        worker = self.workers.get(wid) if wid else None
        return worker is not None and worker.quiet

    def signal(self, wid: str, state: str) -> int:
        """Quiet or terminate one worker, or every worker with ``wid="all"`` (web UI)."""
        targets = list(self.workers.values()) if wid == "all" else [self.workers.get(wid)]
        count = 0
        for worker in targets:
            if worker is not None:
                worker.signal(state)
                count += 1
        return count

    def reap(self, now: float) -> list[str]:
        """Drop workers silent for more than 60 s and close all their connections; their
        wids."""
        cutoff = now - HEARTBEAT_EXPIRY
        dead = [w for w in self.workers.values() if w.last_beat < cutoff]
        for worker in dead:
            del self.workers[worker.wid]
            for conn in list(worker.connections):
                conn.close()
            if self.on_gone is not None:
                self.on_gone(worker.wid, True)
        self.reaped += len(dead)
        return [w.wid for w in dead]

"""The periodic tasks and their INFO statistics.

The real server ticks every second and runs a task when the Unix second is a multiple of
its period; :meth:`PeriodicTasks.run_due` does the same for every tick boundary crossed since
the previous call, so a manual clock advanced by a minute runs each task once.

A run moves :data:`SLICE` jobs at most; a task with more to do (a million scheduled jobs
due at the same second, a fleet of workers gone with their reservations) stays in
``unfinished`` and :meth:`PeriodicTasks.resume` does the next slice. A server calls it once
per event-loop turn until nothing is left, so the clients are served in between.

=========== ====== =====================================================
INFO name   period what it does
=========== ====== =====================================================
Scheduled   5 s    due scheduled jobs -> their queues
Retries     5 s    due retries -> their queues
Dead        60 s   purge dead jobs past their 180 days (100 per run)
Busy        15 s   expire overdue reservations (ReservationExpired)
Workers     15 s   drop workers silent for 60 s, closing their connections
=========== ====== =====================================================

Server extensions get their :meth:`~werk.server._extension.Extension.tick` after these, on
every run that finds the clock moved on (every second; every move of a manual clock), and
again a slice per loop turn while one says it has more to do; INFO does not list them.

The tasks know the manager; the manager does not know them (a server owns both).

Example::

    >>> from werk.server._clock import ManualClock
    >>> from werk.server._storage import MemoryStorage
    >>> from werk.server._manager import Manager
    >>> clock = ManualClock(1_700_000_000)
    >>> tasks = PeriodicTasks(Manager(MemoryStorage(), clock))
    >>> clock.advance(60); tasks.run_all_due()
    >>> tasks.stats()["Dead"]["cycles"]
    1
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from werk.server._extension import DELETED, EXPIRED
from werk.server._gojson import GoJSONError
from werk.server._manager import Manager
from werk.server._sets import Reservation, SortedSet

__all__ = ["PERIODS", "SLICE", "PeriodicTasks", "enqueue_due", "purge_dead", "reap_reservations"]

log = logging.getLogger("werk.server")

EXPIRY_FAILURE = ("ReservationExpired", "Faktory job reservation expired")

PERIODS = {"Scheduled": 5, "Retries": 5, "Dead": 60, "Busy": 15, "Workers": 15}
SLICE = 1000
"""Jobs a task moves per run (a few milliseconds of work)."""
_EXTENSIONS = "extensions"  # in ``unfinished``: some extension's tick has more to do


class PeriodicTasks:
    """Runs the manager's periodic tasks on tick boundaries and keeps their statistics."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        now = manager.clock.now()
        self._last = {name: math.floor(now / p) for name, p in PERIODS.items()}
        self._cycles = dict.fromkeys(PERIODS, 0)
        self._wall = dict.fromkeys(PERIODS, 0.0)
        self._moved = dict.fromkeys(PERIODS, 0)
        self.unfinished: dict[str, float] = {}  # task -> the tick's time, more to do
        self._ticked = now

    def run_due(self, now: float) -> list[str]:
        """Run each task whose tick came since the last call; the names that ran."""
        ran = []
        for name, period in PERIODS.items():
            tick = math.floor(now / period)
            if tick <= self._last[name]:
                continue
            self._last[name] = tick
            self.run(name, now)
            ran.append(name)
        hooks = self.manager.hooks
        if hooks is not None and now > self._ticked:
            self._ticked = now
            if hooks.tick(now):
                self.unfinished[_EXTENSIONS] = now
            else:
                self.unfinished.pop(_EXTENSIONS, None)
        return ran

    def run(self, name: str, now: float) -> int:
        """Run one task now (its first slice); the number of jobs (or workers) it moved."""
        self._cycles[name] += 1
        return self._slice(name, now)

    def run_all_due(self) -> None:
        """Run the tasks whose tick came since the last call, to the end (a server runs
        them a slice per loop turn instead: :meth:`run_due`, then :meth:`resume`)."""
        self.run_due(self.manager.clock.now())
        while self.resume():
            pass

    def resume(self) -> bool:
        """Run the next slice of every unfinished task; True while some still are."""
        for name, now in list(self.unfinished.items()):
            if name != _EXTENSIONS:
                self._slice(name, now)
            elif self.manager.hooks is None or not self.manager.hooks.resume_tick(now):
                del self.unfinished[name]
        return bool(self.unfinished)

    def _slice(self, name: str, now: float) -> int:
        m = self.manager
        start = time.perf_counter()
        left = None
        if name == "Scheduled":
            count = enqueue_due(m, m.scheduled, now, SLICE)
            left = m.scheduled
        elif name == "Retries":
            count = enqueue_due(m, m.retries, now, SLICE)
            left = m.retries
        elif name == "Dead":
            count = purge_dead(m, now)
        elif name == "Busy":
            count = reap_reservations(m, now, SLICE)
            left = m.working
        else:
            count = len(m.workers.reap(now))
        if left is not None and left.has_due(now):
            self.unfinished[name] = now
        else:
            self.unfinished.pop(name, None)
        self._wall[name] += time.perf_counter() - start
        self._moved[name] += count
        return count

    def stats(self) -> dict[str, dict[str, Any]]:
        """The ``faktory.tasks`` object of INFO (keys sorted as Go writes a map)."""
        m = self.manager
        out: dict[str, dict[str, Any]] = {
            "Busy": {"reaped": self._moved["Busy"], "size": len(m.reservations)},
        }
        for name, s in (("Dead", m.dead), ("Retries", m.retries), ("Scheduled", m.scheduled)):
            out[name] = {
                "cycles": self._cycles[name],
                "enqueued": self._moved[name],
                "size": len(s),
                "wall_time_sec": self._wall[name],
            }
        out["Workers"] = {"reaped": m.workers.reaped, "size": len(m.workers)}
        return out


def enqueue_due(m: Manager, s: SortedSet, now: float, limit: int = 1 << 62) -> int:
    """Move due jobs (``limit`` at most) of the scheduled or retries set into their
    queues; the number moved."""
    total = 0
    while total < limit:
        want = min(100, limit - total)
        batch = s.pop_due(now, want)
        for entry in batch:
            m.storage.entry_remove(entry.id)
            try:
                job = m.codec.loads(entry.payload)
                error = m.enqueue(job)
            except (GoJSONError, KeyError, TypeError) as exc:
                error = str(exc)
            if error is not None:
                log.warning("dropping job %s: %s", entry.jid, error)
                m.jobs_removed(((entry.jid, entry.payload),), DELETED)
        total += len(batch)
        if len(batch) < want:
            break
    return total


def purge_dead(m: Manager, now: float) -> int:
    """Delete dead jobs whose 180 days are over (at most 100 per run, as Faktory)."""
    batch = m.dead.pop_due(now, 100)
    for entry in batch:
        m.storage.entry_remove(entry.id)
    m.jobs_removed(((e.jid, e.payload) for e in batch), DELETED)
    return len(batch)


def reap_reservations(m: Manager, now: float, limit: int = 1 << 62) -> int:
    """Fail the reservations that expired (ReservationExpired), looking at ``limit`` at
    most; the count reaped."""
    total = 0
    for entry in m.working.pop_due(now, limit):
        m.storage.entry_remove(entry.id)
        res = m.reservations.get(entry.jid)
        if res is not entry:
            continue  # a duplicate jid's older copy: nothing left to fail
        del m.reservations[entry.jid]
        assert isinstance(entry, Reservation)
        m.process_failure(entry, *EXPIRY_FAILURE, None, reason=EXPIRED)
        total += 1
    return total

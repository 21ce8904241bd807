# Queue throttles (docs/enterprise.md section 9): [throttles] in conf.d, one limit per
# queue, either across all workers (concurrency = N) or per worker process (worker = N),
# and a timeout after which a taken slot is reclaimed.
#
# A slot is taken when FETCH reserves a job of a throttled queue (the queue is guarded:
# admit() is asked first, and a full queue is skipped so that the FETCH's other queues
# still deliver) and freed when the reservation ends (ACK, FAIL, reservation expiry, a
# FETCH reply that never reached its client), when its timeout passes (tick(), a slice at
# a time, in deadline order) or when the server reaps the worker that holds it. Each free
# wakes the FETCHes blocked on that queue. Slots are records (space "throttle", key jid),
# written in the same commit as the reservation, so they survive kill -9 with it.

from __future__ import annotations

import heapq
import json
from collections import Counter
from dataclasses import dataclass

from werk._job import QUEUE_NAME_RE
from werk.server._confd import Config
from werk.server._extension import PUT_BACK, Extension, MetricSample, Records
from werk.server._payload import Payload
from werk.server._sets import Reservation

__all__ = ["SLICE", "SPACE", "Slot", "Throttle", "Throttles", "read_throttles"]

SPACE = "throttle"
SLICE = 1000  # slots reclaimed per tick() call


@dataclass(frozen=True)
class Throttle:
    """One ``[throttles]`` entry: ``limit`` jobs of ``queue`` at once, across all workers
    (``per_worker`` False) or per worker process, each slot reclaimed after ``timeout`` s."""

    queue: str
    limit: int
    per_worker: bool
    timeout: int

    @property
    def kind(self) -> str:
        """``"10 concurrent"`` or ``"2 per worker"`` (Enterprise's Type column)."""
        return f"{self.limit} per worker" if self.per_worker else f"{self.limit} concurrent"


@dataclass
class Slot:
    """A taken slot: the reserved job's queue, its worker, since and until when."""

    queue: str
    wid: str
    since: float
    until: float


def read_throttles(config: Config) -> dict[str, Throttle]:
    """The checked ``[throttles]`` of ``config``; :class:`~werk.ConfigurationError` naming
    the file and line of the first bad entry."""
    throttles: dict[str, Throttle] = {}
    for name, section in config.throttles.items():
        if not QUEUE_NAME_RE.match(name):
            raise section.error(f"throttles.{name}: a throttle's name is a queue name")
        section.check_keys(allowed=("concurrency", "worker", "timeout"))
        given = [key for key in ("concurrency", "worker") if key in section]
        if len(given) != 1:
            raise section.error(
                f"throttles.{name} needs exactly one of concurrency or worker"
                + (", not both" if given else "")
            )
        limit = section.integer(given[0], minimum=1)
        timeout = section.integer("timeout", minimum=1)
        throttles[name] = Throttle(name, limit, given[0] == "worker", timeout)
    return throttles


class Throttles(Extension):
    """Limits the jobs of throttled queues in progress; see the module comment."""

    def __init__(self) -> None:
        self.throttles: dict[str, Throttle] = {}
        self.slots: dict[str, Slot] = {}  # by the reserved jid
        self.in_use: Counter[str] = Counter()  # by queue
        self.per_worker: Counter[tuple[str, str]] = Counter()  # by (queue, wid)
        self._deadlines: list[tuple[float, str]] = []  # heap of (until, jid), may be stale
        self.taken = 0  # slots taken since boot
        self.reclaimed = 0  # slots freed by timeout or by the reaper since boot

    # -- configuration -------------------------------------------------------------------

    def read_config(self, config: Config) -> object:
        return read_throttles(config)

    def use_config(self, config: object) -> None:
        assert isinstance(config, dict)
        old, self.throttles = self.throttles, config
        for queue in old.keys() - config.keys():
            self.host.unguard_queue(queue, self)  # wakes its waiting FETCHes
        for queue in config:
            self.host.guard_queue(queue, self)
            self.host.wake(queue)  # a raised limit lets waiting FETCHes in

    # -- state ---------------------------------------------------------------------------

    def load(self, records: Records) -> None:
        self.slots.clear()
        self.in_use.clear()
        self.per_worker.clear()
        self._deadlines.clear()
        reserved = self.host.reservations
        for jid, raw in records.get(SPACE, {}).items():
            if jid in reserved:  # else its reservation ended in the same commit
                data = json.loads(raw)
                self._take(jid, Slot(data["queue"], data["wid"], data["since"], data["until"]))

    def metric_samples(self) -> list[MetricSample]:
        samples = []
        for queue, throttle in self.throttles.items():
            labels = {"queue": queue}
            samples.append(
                MetricSample(
                    "werk_server_throttle_limit",
                    throttle.limit,
                    help="A throttle's limit (per worker process for a worker throttle).",
                    labels=labels,
                )
            )
            samples.append(
                MetricSample(
                    "werk_server_throttle_in_use",
                    self.in_use[queue],
                    help="Slots of a throttle held by reserved jobs (all workers).",
                    labels=labels,
                )
            )
        samples.append(
            MetricSample(
                "werk_server_throttle_slots_taken",
                self.taken,
                kind="counter",
                help="Throttle slots taken by FETCH since the server started.",
            )
        )
        samples.append(
            MetricSample(
                "werk_server_throttle_slots_reclaimed",
                self.reclaimed,
                kind="counter",
                help="Throttle slots freed by timeout or a reaped worker since the start.",
            )
        )
        return samples

    def flushed(self) -> None:
        # FLUSH erased the reservations the slots stood for.
        self.slots.clear()
        self.in_use.clear()
        self.per_worker.clear()
        self._deadlines.clear()
        self.host.clear_records(SPACE)

    def _take(self, jid: str, slot: Slot) -> None:
        self.slots[jid] = slot
        self.in_use[slot.queue] += 1
        self.per_worker[slot.queue, slot.wid] += 1
        heap = self._deadlines
        heapq.heappush(heap, (slot.until, jid))
        if len(heap) > 2 * len(self.slots) + 1000:
            # Mostly entries of freed slots: rebuild from the held ones (amortised O(1)).
            self._deadlines = [(sl.until, j) for j, sl in self.slots.items()]
            heapq.heapify(self._deadlines)

    def _free(self, jid: str, wake: bool = True) -> Slot | None:
        slot = self.slots.pop(jid, None)
        if slot is None:
            return None
        self.in_use[slot.queue] -= 1
        if not self.in_use[slot.queue]:
            del self.in_use[slot.queue]
        key = (slot.queue, slot.wid)
        self.per_worker[key] -= 1
        if not self.per_worker[key]:
            del self.per_worker[key]
        self.host.delete_record(SPACE, jid)
        if wake:
            self.host.wake(slot.queue)
        return slot

    # -- FETCH ---------------------------------------------------------------------------

    def admit(self, queue: str, wid: str) -> bool:
        throttle = self.throttles.get(queue)
        if throttle is None:
            return True
        if throttle.per_worker:
            return self.per_worker[queue, wid] < throttle.limit
        return self.in_use[queue] < throttle.limit

    def reserved(self, res: Reservation, job: Payload | None) -> None:
        throttle = self.throttles.get(res.queue)
        if throttle is None:
            return
        slot = Slot(res.queue, res.wid, res.since, res.since + throttle.timeout)
        self._take(res.jid, slot)
        self.taken += 1
        value = {"queue": slot.queue, "wid": slot.wid, "since": slot.since, "until": slot.until}
        self.host.put_record(SPACE, res.jid, json.dumps(value).encode())

    # -- the end of a reservation ----------------------------------------------------------

    def released(self, res: Reservation, reason: str) -> None:
        # A job put back is handed to the next FETCH by the manager itself.
        self._free(res.jid, wake=reason != PUT_BACK)

    def worker_gone(self, wid: str, reaped: bool) -> None:
        # A closed connection may be a restart: only the reaper (60 s without BEAT)
        # declares the worker dead; the slot's timeout covers the rest.
        if not reaped:
            return
        for jid in [jid for jid, slot in self.slots.items() if slot.wid == wid]:
            self._free(jid)
            self.reclaimed += 1

    def tick(self, now: float) -> bool:
        for _ in range(SLICE):
            # Looked up each time: a freed slot's wake may take slots, which may rebuild it.
            heap = self._deadlines
            if not heap or heap[0][0] > now:
                return False
            until, jid = heapq.heappop(heap)
            slot = self.slots.get(jid)
            if slot is not None and slot.until == until:  # not freed and taken again
                self._free(jid)
                self.reclaimed += 1
        return bool(self._deadlines) and self._deadlines[0][0] <= now

    # -- for the web UI --------------------------------------------------------------------

    def usage(self) -> list[tuple[Throttle, int]]:
        """Each configured throttle and its slots in use, by queue name."""
        return [(self.throttles[q], self.in_use[q]) for q in sorted(self.throttles)]

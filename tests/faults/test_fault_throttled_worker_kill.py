"""``kill -9`` of a real ``werk worker`` holding a throttled queue's only slot.

What must not be lost: the queue itself. The dead worker's slot comes back after the
throttle's ``timeout`` (not at once: the worker may only be slow; not never: that would stop
the queue for good), the other jobs of the queue are then handed out, and the dead worker's
own job is given back when its reservation runs out, like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.faults.harness import Ledger, WorkerProcess, alive
from tests.server.blocking import park_fetch
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory
from tests.worker.helpers import wait_until

import werk
from werk.server import ManualClock

pytestmark = pytest.mark.slow

TIMEOUT = 30  # the throttle's: a slot not given back within it is reclaimed
RESERVE_FOR = 600


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_the_slot_of_a_killed_worker_comes_back_after_the_throttle_timeout(
    make_server: ServerFactory, tmp_path: Path, executor: str
) -> None:
    config = {"throttles": {"narrow": {"concurrency": 1, "timeout": TIMEOUT}}}
    srv = make_server(clock=ManualClock(MANUAL_EPOCH), fetch_timeout=3600, config=config)
    ledger = Ledger(tmp_path)
    with werk.Client(srv.url) as client:
        first, second = (
            client.push("sleepy", str(tmp_path), 60, queue="narrow", reserve_for=RESERVE_FOR)
            for _ in range(2)
        )
    args = ("-c", "4", "-q", "narrow", "--executor", executor)
    with WorkerProcess(srv.url, *args, log_path=tmp_path / "worker.log") as worker:
        wait_until(lambda: ledger.count("start") == {first: 1}, 60, "the first job to start")
        # Four slots of the worker, one slot of the queue: the second job waits.
        assert srv.info()["queues"]["narrow"] == 1
        worker.kill9()
    pids = ledger.pids("start")
    wait_until(lambda: not any(alive(pid) for pid in pids), 5, "the job processes to end")
    with Raw(srv, wid="w-after-the-kill") as c:
        park_fetch(srv, c, "narrow")  # the dead worker still holds the slot
        srv.advance(TIMEOUT - 1)
        assert srv.info()["queues"]["narrow"] == 1, "the slot came back before the timeout"
        srv.advance(1)  # the timeout: the slot is reclaimed and the parked FETCH woken
        job = json.loads(c.read())
        assert job["jid"] == second
        assert c.cmd(f"ACK {json.dumps({'jid': second})}") == "OK"
    # The dead worker's job comes back once its reservation runs out.
    srv.advance(RESERVE_FOR)
    srv.advance(16)  # the server looks for expired reservations every 15 s
    srv.advance(60)  # and the first retry comes due within 15 + 30 s
    with Raw(srv, wid="w-later") as c:
        job = c.fetch("narrow")
        assert job is not None and job["jid"] == first
        assert job["failure"]["errtype"] == "ReservationExpired"
        assert c.cmd(f"ACK {json.dumps({'jid': first})}") == "OK"
    assert srv.info()["queues"].get("narrow", 0) == 0
    assert ledger.count("start") == {first: 1}  # nothing else ran in the dead worker

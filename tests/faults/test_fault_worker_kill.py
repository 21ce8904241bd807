"""``kill -9`` of a worker process mid-job, on a server whose clock the test moves.

What must not be lost: every job the dead worker was running. It stays reserved until its
``reserve_for`` runs out (not sooner: the worker may only be slow), then goes to
the retry set with errtype ``ReservationExpired`` and is handed out again. Nothing of the
dead worker runs on meanwhile (the process executor's children die with their parent), so
the retry is the only other run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.faults.harness import Ledger, WorkerProcess, alive, scaled
from tests.server.rawclient import Raw
from tests.worker.helpers import wait_until

import werk
from werk.server import EmbeddedServer

pytestmark = pytest.mark.slow

RESERVE_FOR = 120


@pytest.mark.parametrize("executor", ["thread", "asyncio", "process"])
def test_kill_9_mid_job_gives_the_jobs_back_when_their_reservation_expires(
    clock_server: EmbeddedServer, tmp_path: Path, executor: str
) -> None:
    n = scaled(4)
    ledger = Ledger(tmp_path)
    srv = clock_server
    with werk.Client(srv.url) as client:
        jids = {client.push("sleepy", str(tmp_path), 30, reserve_for=RESERVE_FOR) for _ in range(n)}
    args = ("-c", str(n), "--executor", executor)
    with WorkerProcess(srv.url, *args, log_path=tmp_path / "worker.log") as worker:
        wait_until(lambda: len(ledger.count("start")) == n, 60, f"the {n} jobs to start")
        worker.kill9()
    # Whatever ran the jobs died with the worker (a child of the process executor too).
    pids = ledger.pids("start")
    wait_until(lambda: not any(alive(pid) for pid in pids), 5, "the job processes to end")
    assert srv.info()["working"] == n
    srv.advance(RESERVE_FOR - 1)
    assert srv.info()["working"] == n, "a reservation expired early"
    srv.advance(16)  # the server looks for expired reservations every 15 s
    info = srv.info()
    assert (info["working"], info["retries"]) == (0, n), info
    # The first retry comes due within 15 + 30 s; then the jobs are handed out again.
    srv.advance(60)
    with Raw(srv, wid="w-after-the-kill") as c:
        back = [c.fetch() for _ in range(n)]
        assert all(job is not None for job in back)
        assert {job["jid"] for job in back} == jids
        assert {job["failure"]["errtype"] for job in back} == {"ReservationExpired"}
        for job in back:
            assert c.cmd(f"ACK {json.dumps({'jid': job['jid']})}") == "OK"
    assert srv.info()["queues"].get("default", 0) == 0
    # Started once each by the dead worker, and none of them ran on to its end.
    assert ledger.count("start") == dict.fromkeys(jids, 1)
    assert not ledger.count("end")
    print(
        f"\n{executor}: kill -9 with {n} jobs running; {n} back after their reservation, "
        f"0 lost, 0 ran on after the kill"
    )

"""A real ``werk worker`` behind a proxy that cuts every connection, again and again.

What must not be lost: any of the N jobs. Each runs at least once. A cut can drop a FETCH's
reply on its way to the worker: that job stays reserved for a worker that never got it, and
comes back when its reservation expires (30 minutes of the server's clock, moved here by
hand). A cut can also drop an ACK; the worker sends it again once reconnected, so the job
does not run again. Duplicate runs are counted; at most one per worker slot per cut.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from tests.faults.harness import Ledger, WorkerProcess, scaled
from tests.faults.proxy import CutProxy
from tests.worker.helpers import end_parked_fetches, wait_until

import werk
from werk.server import EmbeddedServer

pytestmark = pytest.mark.slow

SLOTS = 4
CUTS = scaled(6)


def _settled(srv: EmbeddedServer, ledger: Ledger) -> bool:
    """Nothing queued, no job that ran still waiting for its ACK, and for half a second
    neither the ledger nor the reservations moved: what is still reserved was handed to a
    connection that is gone, and never reached the worker."""

    def snapshot() -> tuple[int, int, frozenset[str]]:
        m = srv.manager
        return sum(m.queue_sizes().values()), len(ledger.lines()), frozenset(m.reservations)

    before = srv.call(snapshot)
    if before[0] or before[2] & ledger.count("done").keys():
        return False
    time.sleep(0.5)
    return srv.call(snapshot) == before


@pytest.mark.parametrize("executor", ["thread", "asyncio", "process"])
def test_a_worker_behind_a_cutting_proxy_loses_nothing(
    clock_server: EmbeddedServer, tmp_path: Path, executor: str
) -> None:
    n = scaled(400)
    ledger = Ledger(tmp_path)
    srv = clock_server
    with CutProxy(srv.host, srv.port) as proxy:
        # 10 ms each: the cuts land while the worker is busy, not after it finished.
        jobs = [werk.Job("record", [str(tmp_path), "", 0.01]) for _ in range(n)]
        pushed = {job.jid for job in jobs}
        with werk.Client(srv.url) as client:
            assert client.push_bulk(jobs) == {}
        args = ("-c", str(SLOTS), "--executor", executor)
        with WorkerProcess(proxy.url, *args, log_path=tmp_path / "worker.log") as worker:
            cut: list[int] = []
            # Cuts spread over the run (one every n / (CUTS + 1) jobs), and each after
            # more runs than the slots can make on jobs fetched before the previous cut: the
            # worker has reconnected by then.
            since = 0
            for k in range(1, CUTS + 1):
                target = max(n * k // (CUTS + 1), since + SLOTS + 1)
                wait_until(lambda t=target: len(ledger.lines()) >= t, 60, f"{target} runs")
                since = len(ledger.lines())
                cut.append(proxy.cut())
            # What a cut stranded comes back when its reservation expires; the jobs then
            # wait out their first retry delay (15 to 44 s) and are fetched again.
            expired = 0
            for _ in range(5):
                wait_until(lambda: _settled(srv, ledger), 60, "the worker to settle")
                if len(ledger.count("done")) == n:
                    break
                stranded = srv.info()["working"]
                srv.advance(1800 + 16)
                expired += stranded
                srv.advance(60)
            ran = ledger.count("done")
            assert set(ran) == pushed, f"never ran: {len(pushed - set(ran))}"
            worker.send(signal.SIGTERM)
            # Blocked FETCHes end when the server's clock moves.
            deadline = time.monotonic() + 15
            while worker.running() and time.monotonic() < deadline:
                end_parked_fetches(srv)
                time.sleep(0.02)
            assert worker.wait(1) == 0, worker.log()
        info = srv.info()
        duplicates = sum(c - 1 for c in ran.values())
        print(
            f"\n{executor}: {n} jobs, {SLOTS} slots, {len(cut)} cuts severing {sum(cut)} "
            f"connections ({proxy.accepted} opened): lost 0, duplicate runs {duplicates}, "
            f"stranded by a cut and back after expiry {expired}"
        )
        assert (info["working"], info["retries"], info["dead"]) == (0, 0, 0), info
        assert sum(info["queues"].values()) == 0
        assert all(c >= 1 for c in cut), f"a cut found no connection: {cut}"
        assert duplicates <= SLOTS * len(cut), ran.most_common(5)

"""``kill -9`` of ``werk server`` (SQLite) while producers push and a real worker works.

What must not be lost: every push the server acknowledged. After the kills and restarts on
the same data directory, each acknowledged job has either run (the ledger) or is still held
by the server, exactly once (in a queue, or reserved); nothing is held twice and nothing
appears that was never pushed. At-least-once allows a job to run again when the server died
between running it and storing its ACK: such duplicates are counted and must stay within
one per worker slot per kill. A job the server reserved for a FETCH whose reply died with
it is not lost either: it comes back when its reservation expires (checked on a manual
clock over the same data).
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest
from tests.faults.harness import (
    Ledger,
    Pushers,
    Tally,
    WorkerProcess,
    scaled,
    worked_off,
)
from tests.server.serverproc import ServerProcess
from tests.servers import ServerFactory
from tests.worker.helpers import wait_until

import werk
from werk.server import ManualClock

pytestmark = pytest.mark.slow

SLOTS = 8


def test_kill_9_during_pushes_and_a_running_worker_loses_nothing_acknowledged(
    make_server: ServerFactory,
    tmp_path: Path,
) -> None:
    n = scaled(600)
    data, jobs = tmp_path / "data", tmp_path / "jobs"
    jobs.mkdir()
    ledger = Ledger(jobs)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ServerProcess(data))
        port = server.port
        url = f"tcp://127.0.0.1:{port}"
        worker = stack.enter_context(
            WorkerProcess(url, "-c", str(SLOTS), log_path=tmp_path / "worker.log")
        )
        # The worker is up and working before the producers start.
        with werk.Client(url) as client:
            first = client.push("record", str(jobs), jid="fault-first-job")
        wait_until(lambda: ledger.count("done")[first], 60, "the worker's first job")
        pushers = Pushers(url, jobs, n, threads=4).start()
        kills = []

        def kill_and_restart() -> None:
            nonlocal server
            kills.append((len(pushers.acked), len(ledger.lines())))
            server.kill9()
            # The same port, so that producers and the worker find it again.
            server = stack.enter_context(ServerProcess(data, "--bind", f"127.0.0.1:{port}"))

        # Kills while the producers push, one more after all their pushes are acknowledged
        # (the worker is still working off the queue, or waiting in FETCH).
        during = scaled(2)
        for k in range(1, during + 1):
            target = n * k // (during + 1)
            wait_until(lambda t=target: len(pushers.acked) >= t, 60, f"{target} pushes")
            kill_and_restart()
        pushers.join(120)
        pushers.acked.add(first)
        kill_and_restart()
        wait_until(lambda: worked_off(url, ledger), 60, "the worker to work off the queue")
        worker.send(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.log()
        assert server.terminate() == 0
    tally = Tally.from_storage(pushers.acked, ledger.count("done"), data, pushers.uncertain)
    print(
        f"\nserver kill -9 x{len(kills)} at (acked, ran) {kills}: pushed "
        f"{len(pushers.acked)} acked (+{len(pushers.uncertain)} unanswered, "
        f"{len(pushers.refused)} refused) with "
        f"{SLOTS} worker slots; {tally.summary()}"
    )
    tally.check()
    assert len(pushers.acked) >= n and not pushers.refused
    assert not tally.queued, "the worker left jobs queued"
    assert tally.duplicate_runs + len(tally.will_run_again) <= SLOTS * len(kills), tally.summary()
    # A job reserved for a reply that died with the server comes back when the
    # reservation expires: 30 minutes on the server's clock, moved here by hand.
    srv = make_server(storage="sqlite", data_dir=data, clock=ManualClock(time.time()))
    assert srv.info()["working"] == len(tally.reserved)
    srv.advance(1800 + 16)
    info = srv.info()
    assert (info["working"], info["retries"]) == (0, len(tally.reserved)), info

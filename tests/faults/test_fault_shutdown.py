"""SIGTERM with long jobs, on each executor: the worker exits in time and no job runs twice.

What must not be lost or doubled: every job running at the signal is FAILed back (it sits in
the retry set with errtype ``Shutdown``, to run again later), and it is not running anywhere
any more once the worker has exited (no thread, no child process), so it never reaches its
end in this worker: the retry will be its only other run.

Each worker runs four jobs that outlast the shutdown timeout: two sync ones (a thread, or
the child process), an async one, and an async one whose work is in ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from tests.faults.harness import Ledger, WorkerProcess, alive
from tests.worker.helpers import wait_until

import werk
from werk.server import EmbeddedServer

pytestmark = pytest.mark.slow

EXECUTORS = ["thread", "asyncio", "process"]
SHUTDOWN_TIMEOUT = 1.0
# The jobs would end this long after they start: after the worker's deadline and exit,
# early enough for the test to watch for an end that must not come. The margin is wide
# because the four jobs may start well apart on a loaded machine.
JOB_SECONDS = SHUTDOWN_TIMEOUT + 4.0
JOBTYPES = ["sleepy", "sleepy", "async_sleepy", "offloaded_sleepy"]


def _push_long_jobs(srv: EmbeddedServer, directory: Path) -> set[str]:
    with werk.Client(srv.url) as client:
        return {client.push(t, str(directory), JOB_SECONDS) for t in JOBTYPES}


def _check_failed_back_and_stopped(
    srv: EmbeddedServer, worker: WorkerProcess, ledger: Ledger, jids: set[str], started: float
) -> None:
    # Nothing of the worker is left: not the process, not a child that ran a job.
    job_pids = ledger.pids("start")
    assert not any(alive(pid) for pid in job_pids | {worker.pid}), worker.log()
    # Every job is in the retry set, FAILed with errtype Shutdown, and nothing is reserved.
    info = srv.info()
    assert (info["retries"], info["working"], info["failures"]) == (4, 0, 4), info
    retried = srv.call(lambda: [json.loads(e.payload) for e in srv.manager.retries.ordered()])
    assert {job["jid"] for job in retried} == jids
    assert {job["failure"]["errtype"] for job in retried} == {"Shutdown"}
    # Started once each; and no job reaches its end, even after it would have.
    assert ledger.count("start") == dict.fromkeys(jids, 1)
    time.sleep(max(0.0, started + JOB_SECONDS + 0.5 - time.monotonic()))
    assert not ledger.count("end"), f"stopped jobs ran on:\n{worker.log()}"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sigterm_exits_in_time_and_leaves_no_job_running(
    server: EmbeddedServer, tmp_path: Path, executor: str
) -> None:
    """``werk worker``: TERM, then the deadline FAILs the 4 jobs; the exit follows soon after."""
    ledger = Ledger(tmp_path)
    jids = _push_long_jobs(server, tmp_path)
    args = ("-c", "4", "--executor", executor, "--shutdown-timeout", str(SHUTDOWN_TIMEOUT))
    with WorkerProcess(server.url, *args, log_path=tmp_path / "worker.log") as worker:
        wait_until(lambda: len(ledger.count("start")) == 4, 60, "the 4 jobs to start")
        started = time.monotonic()
        worker.send(signal.SIGTERM)
        assert worker.wait(SHUTDOWN_TIMEOUT + 10) == 0, worker.log()
        assert worker.exited_at is not None
        took = worker.exited_at - started
        print(f"\n{executor}: exit {took:.2f} s after SIGTERM (timeout {SHUTDOWN_TIMEOUT} s)")
        assert took < SHUTDOWN_TIMEOUT + 3.0, worker.log()
        assert "0 jobs done, 4 failed" in worker.log()
        _check_failed_back_and_stopped(server, worker, ledger, jids, started)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_second_signal_stops_a_library_worker_at_once(
    server: EmbeddedServer, tmp_path: Path, executor: str
) -> None:
    """``Worker.run()`` as a script's main: TERM, then INT, with a 60 s shutdown timeout."""
    ledger = Ledger(tmp_path)
    jids = _push_long_jobs(server, tmp_path)
    with WorkerProcess(
        server.url, log_path=tmp_path / "worker.log", library=(executor, "60", "4")
    ) as worker:
        wait_until(lambda: len(ledger.count("start")) == 4, 60, "the 4 jobs to start")
        started = time.monotonic()
        worker.send(signal.SIGTERM)
        wait_until(lambda: "terminating" in worker.log(), 10, "the first signal to be handled")
        second = time.monotonic()
        worker.send(signal.SIGINT)
        assert worker.wait(10) == 0, worker.log()
        assert worker.exited_at is not None
        took = worker.exited_at - second
        print(f"\n{executor}: exit {took:.2f} s after the second signal")
        assert took < 3.0, worker.log()
        assert "stopping now" in worker.log()
        _check_failed_back_and_stopped(server, worker, ledger, jids, started)

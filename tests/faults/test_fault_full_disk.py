"""A full disk under ``werk server`` while producers push and a real worker works.

The server runs with ``RLIMIT_FSIZE`` (as in ``tests/server/test_server_durability.py``): a
write past the limit fails with ``EFBIG``, as on a full disk. What must hold: every command
that could not be stored is answered with an error (nobody hangs), the server stays up,
and nothing is lost: after ``kill -9`` and a restart without the limit on the same data,
every acknowledged push has run or is held exactly once, and no refused push was stored
(nor ran). The worker rides it out: its refused FETCHes and ACKs are sent again, and it
works off the queue once the server is back.
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
    faktory_info,
    scaled,
    stored_jobs,
    worked_off,
)
from tests.server.serverproc import ServerProcess
from tests.worker.helpers import wait_until

import werk

pytestmark = pytest.mark.slow

SLOTS = 4
PADDING = "x" * 2000  # about 2 KB per job: the limit is reached after a few hundred
LIMIT = 512 * 1024


def test_a_full_disk_refuses_cleanly_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    refusals = scaled(50)
    data, jobs = tmp_path / "data", tmp_path / "jobs"
    jobs.mkdir()
    ledger = Ledger(jobs)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ServerProcess(data, max_file_size=LIMIT))
        port = server.port
        url = f"tcp://127.0.0.1:{port}"
        worker = stack.enter_context(
            WorkerProcess(url, "-c", str(SLOTS), log_path=tmp_path / "worker.log")
        )
        pushers = Pushers(url, jobs, 10**9, threads=4, payload=PADDING).start()
        wait_until(lambda: len(pushers.refused) >= refusals, 60, f"{refusals} refused pushes")
        pushers.stop()
        pushers.join(30)
        # Refused, not hung: and the server still answers.
        assert not pushers.uncertain, "a push got no answer"
        reasons = {reason.split(":")[0] for reason in pushers.refused.values()}
        assert faktory_info(url)["queues"] is not None
        server.kill9()
        server = stack.enter_context(ServerProcess(data, "--bind", f"127.0.0.1:{port}"))
        wait_until(lambda: worked_off(url, ledger), 60, "the worker to work off the queue")
        worker.send(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.log()
        assert worker.proc is not None and worker.proc.returncode == 0
        assert server.terminate() == 0
    ran = ledger.count("done")
    tally = Tally.from_storage(pushers.acked, ran, data)
    print(
        f"\nfull disk ({LIMIT // 1024} KiB file limit): {len(pushers.acked)} pushes acked, "
        f"{len(pushers.refused)} refused ({', '.join(sorted(reasons))}); "
        f"{tally.summary()}; refused yet stored or run: "
        f"{len(pushers.refused.keys() & (ran.keys() | tally.held.keys()))}"
    )
    tally.check()
    assert not pushers.refused.keys() & (ran.keys() | tally.held.keys()), "a refused push ran"
    assert tally.duplicate_runs + len(tally.will_run_again) <= SLOTS, tally.summary()


def _fill_the_last_bytes(url: str) -> int:
    """Write tiny records (a queue paused, resumed) until even those are refused: then
    no ACK fits either. Returns how many went in."""
    n = 0
    with werk.Client(url, timeout=5) as client:
        while True:
            try:
                (client.queue_resume if n % 2 else client.queue_pause)("filler")
            except werk.ServerError:
                return n
            n += 1


@pytest.mark.parametrize("executor", ["thread", "asyncio"])
def test_a_job_finishing_while_the_disk_is_full_is_acknowledged_once_it_is_not(
    tmp_path: Path, executor: str
) -> None:
    """The disk fills up while a job runs (other producers fill it): the job's ACK is refused.

    The worker must send it again until the server can store it, not drop it: a dropped ACK
    leaves the job reserved, and it runs a second time when the reservation expires.
    """
    data, jobs = tmp_path / "data", tmp_path / "jobs"
    jobs.mkdir()
    ledger = Ledger(jobs)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ServerProcess(data, max_file_size=LIMIT))
        port = server.port
        url = f"tcp://127.0.0.1:{port}"
        worker = stack.enter_context(
            WorkerProcess(url, "-c", "1", "--executor", executor, log_path=tmp_path / "worker.log")
        )
        with werk.Client(url) as client:
            jid = client.push("gated", str(jobs), "gate")
        wait_until(lambda: ledger.count("start")[jid], 30, "the job to start")
        # Fill the disk through a queue nobody works, while the job runs, until nothing
        # fits any more (also after the server's once-a-second fold into the database).
        filler = Pushers(url, jobs, 10**9, threads=2, payload=PADDING, queue="filler").start()
        wait_until(
            lambda: filler.refused and time.monotonic() - filler.last_ack > 1.5,
            60,
            "the disk to stay full",
        )
        filler.stop()
        filler.join(30)
        _fill_the_last_bytes(url)
        (jobs / "gate").touch()  # the job ends; its ACK cannot be stored
        wait_until(lambda: ledger.count("end")[jid], 30, "the job to end")
        wait_until(lambda: "Errno 27" in worker.log(), 30, "the worker to see its ACK refused")
        server.kill9()
        server = stack.enter_context(ServerProcess(data, "--bind", f"127.0.0.1:{port}"))
        wait_until(
            lambda: faktory_info(url)["sets"]["working"] == 0, 30, "the ACK to be sent again"
        )
        worker.send(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.log()
        assert server.terminate() == 0
    assert jid not in {j for j, _ in stored_jobs(data)}, "the job is still reserved"
    assert ledger.count("start")[jid] == 1

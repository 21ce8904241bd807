"""Which child runs a job: the one that finished a job last, or another when it is busy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.worker import sample_jobs
from tests.worker.helpers import running, wait_until

import werk
from werk.server import EmbeddedServer

pytestmark = pytest.mark.slow


def _pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line.split()[0]) for line in path.read_text().splitlines()]


def test_jobs_one_after_another_run_in_the_same_child(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    # Every slot waits in its own FETCH; whichever slot gets a job, the child that ran the
    # previous one (its memory still in the CPU's caches) runs it, and the others sleep.
    worker = werk.Worker(sample_jobs.app, server.url, concurrency=4, executor="process")
    with running(worker, server), werk.Client(server.url) as client:
        for i in range(6):
            client.push("record", str(tmp_path), "seq")
            wait_until(lambda i=i: worker.processed == i + 1, timeout=30, what=f"job {i}")
    pids = _pids(tmp_path / "seq")
    assert len(pids) == 6
    assert len(set(pids)) == 1 and pids[0] != os.getpid()


def test_jobs_at_the_same_time_run_in_different_children(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    worker = werk.Worker(sample_jobs.app, server.url, concurrency=3, executor="process")
    with running(worker, server), werk.Client(server.url) as client:
        for name in ("a", "b", "c"):
            client.push("gated", str(tmp_path), name)
        # All three wait for their gates at once: three children, one job each.
        wait_until(
            lambda: all(_pids(tmp_path / f"{n}.start") for n in "abc"),
            timeout=30,
            what="three jobs running at once",
        )
        for name in "abc":
            (tmp_path / f"{name}.go").touch()
        wait_until(lambda: worker.processed == 3, timeout=30, what="the three jobs")
        client.push("record", str(tmp_path), "next")
        wait_until(lambda: worker.processed == 4, timeout=30, what="one more job")
    started = [_pids(tmp_path / f"{n}.start")[0] for n in "abc"]
    assert len(set(started)) == 3
    assert _pids(tmp_path / "next")[0] in started  # a child that is already warm
    assert server.info()["failures"] == 0


def test_a_child_has_the_environment_the_worker_has_when_the_child_starts(
    server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Children are forked from a fork server that outlives a worker (and may have started
    # long before): what a child sees is still the worker's environment of the moment.
    for value in ("first", "second"):
        monkeypatch.setenv("WERK_TEST_CHILD_ENV", value)
        worker = werk.Worker(sample_jobs.app, server.url, concurrency=1, executor="process")
        with running(worker, server), werk.Client(server.url) as client:
            client.push("environment", str(tmp_path), value, "WERK_TEST_CHILD_ENV")
            wait_until(lambda w=worker: w.processed == 1, timeout=30, what=f"the {value} job")
        pid, seen = (tmp_path / value).read_text().split()
        assert (seen, int(pid) != os.getpid()) == (value, True)

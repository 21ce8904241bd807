"""The Django example project, run end to end: ``werk worker`` sets Django up, finds the jobs
of the shop app, and each job writes a row through the ORM between two connection cleanups."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.worker.helpers import WERK, subprocess_env, wait_until

import werk
from werk.server import EmbeddedServer

PROJECT = Path(__file__).with_name("django_project")
JOBS = 4


def _rows(db: Path) -> list[tuple[str, int, int, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT value, pid, opened, closed FROM shop_row ORDER BY id")
        return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("executor", "jobtype", "max_age", "launcher"),
    [
        ("thread", "Record", "0", "werk"),
        ("thread", "Record", "none", "werk"),  # persistent connections: kept across jobs
        ("process", "Record", "0", "werk"),
        ("asyncio", "Record", "0", "werk"),  # a sync job on the asyncio executor's pool thread
        ("asyncio", "RecordAsync", "0", "werk"),  # sync_to_async, in the job's own context
        ("thread", "Record", "0", "manage.py"),  # python manage.py werk_worker (werk.django app)
        ("process", "RecordAsync", "0", "manage.py"),
    ],
)
def test_jobs_write_rows_and_connections_are_closed_after_each_job(
    faktory_server: EmbeddedServer,
    tmp_path: Path,
    executor: str,
    jobtype: str,
    max_age: str,
    launcher: str,
) -> None:
    db = tmp_path / "example.sqlite3"
    env = subprocess_env(
        faktory_server.url,
        DJANGO_SETTINGS_MODULE="djproject.settings",
        EXAMPLE_DB=str(db),
        EXAMPLE_CONN_MAX_AGE=max_age,
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=PROJECT,
        env=env,
        check=True,
        timeout=60,
    )
    with werk.Client(faktory_server.url) as client:
        for i in range(JOBS):
            client.push(werk.Job(jobtype, [f"row-{i}"]))
    # One slot: the jobs run one after another, so each row tells what the jobs before it left.
    options = ["djproject.jobs", "-c", "1", "--executor", executor]
    if launcher == "manage.py":
        command = [sys.executable, "manage.py", "werk_worker", *options]
        del env["DJANGO_SETTINGS_MODULE"]  # manage.py sets it, as in any project
    else:
        command = [*WERK, "worker", *options]
    proc = subprocess.Popen(
        command,
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: len(_rows(db)) == JOBS, timeout=60, what="the rows")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    rows = _rows(db)
    assert [r[0] for r in rows] == [f"row-{i}" for i in range(JOBS)]
    pids = {r[1] for r in rows}
    assert len(pids) == 1
    assert (pids == {proc.pid}) is (executor != "process"), "jobs ran in the wrong process"
    counts = [(opened, closed) for _, _, opened, closed in rows]
    if max_age == "none":
        assert counts == [(1, 0)] * JOBS  # one connection, reused by every job
    else:
        # Each job opened a connection of its own: the one before it was closed after its job.
        assert counts == [(i + 1, i) for i in range(JOBS)]
    with werk.Client(faktory_server.url) as client:
        info = client.info()["faktory"]
    assert info["total_processed"] == JOBS
    assert info["total_failures"] == 0

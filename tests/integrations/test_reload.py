"""``werk worker --reload``: a change restarts the worker, after its running job finishes."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.worker.helpers import WERK, subprocess_env

import werk
from werk.server import EmbeddedServer

JOBS = """
import time
from pathlib import Path

import werk

app = werk.App()
OUT = Path(__file__).with_name("out.txt")


def note(line):
    with OUT.open("a") as f:
        f.write(line + "\\n")


@app.job(jobtype="Work")
def work(arg):
    note("{version}:" + arg)


@app.job(jobtype="Slow")
def slow():
    note("slow-started")
    release = Path(__file__).with_name("release")
    while not release.exists():  # the test releases it once the restart is under way
        time.sleep(0.01)
    note("slow-done")
"""


def _wait_for(
    predicate: Callable[[], bool], what: str, output: list[str], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" + "".join(output)
        time.sleep(0.02)


def test_reload_restarts_after_the_running_job_finishes(
    faktory_server: EmbeddedServer, tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs.py"
    out = tmp_path / "out.txt"
    jobs.write_text(JOBS.format(version="v1"))
    proc = subprocess.Popen(
        [*WERK, "worker", "jobs", "--reload", "-c", "2", "--shutdown-timeout", "60"],
        cwd=tmp_path,
        # v1 and v2 are the same size: written within one second, a cached v1 .pyc would
        # pass for v2's.
        env=subprocess_env(faktory_server.url, PYTHONDONTWRITEBYTECODE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()

    def logged(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(text in line for line in seen)

    def notes() -> list[str]:
        return out.read_text().split() if out.exists() else []

    try:
        with werk.Client(faktory_server.url) as client:
            client.push("Work", "a", retry=0)
            _wait_for(lambda: "v1:a" in notes(), "the first worker to run Work", seen)
            client.push("Slow", retry=0)
            _wait_for(lambda: "slow-started" in notes(), "Slow to start", seen)

            jobs.write_text(JOBS.format(version="v2"))
            _wait_for(lambda: logged("stopping worker"), "the reloader to stop the worker", seen)
            # The old worker got TERM but is still finishing Slow: no new worker yet.
            assert not logged("started a new worker")
            (tmp_path / "release").touch()
            _wait_for(lambda: logged("started a new worker"), "the new worker", seen)

            client.push("Work", "b", retry=0)
            _wait_for(lambda: "v2:b" in notes(), "the new worker to run the new code", seen)
            info = client.info()["faktory"]
        assert notes() == ["v1:a", "slow-started", "slow-done", "v2:b"]
        assert info["total_failures"] == 0
        assert info["total_processed"] == 3
    finally:
        (tmp_path / "release").touch()  # a failed test must not leave Slow holding the worker
        proc.terminate()
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
    logged("")
    assert proc.returncode == 0, "\n".join(seen)

"""Real processes: `werk worker` under signals and kill -9, crashing children, server restarts."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tests.servers import ServerFactory
from tests.worker import sample_jobs
from tests.worker.helpers import ROOT, WERK, running, subprocess_env, wait_until

import werk
from werk.server import EmbeddedServer

pytestmark = pytest.mark.slow


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _start_worker(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*WERK, "worker", "tests.worker.sample_jobs:app", "--log-level", "INFO", *args],
        cwd=ROOT,
        env=subprocess_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _push(url: str, jobtype: str, *args: object, **options: object) -> str:
    with werk.Client(url) as client:
        return client.push(jobtype, *args, **options)


def test_sigterm_lets_a_short_job_finish_and_fails_a_long_one(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    proc = _start_worker(server.url, "-c", "4", "--shutdown-timeout", "4")
    try:
        _push(server.url, "sleepy", str(tmp_path), "short", 0.5)
        _push(server.url, "sleepy", str(tmp_path), "long", 30)
        wait_until(
            lambda: _lines(tmp_path / "short.start") and _lines(tmp_path / "long.start"),
            timeout=20,
            what="both jobs to start",
        )
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert elapsed < 4 + 6, elapsed  # the timeout, the last FETCH, and room for a slow machine
    assert _lines(tmp_path / "short.end")  # finished within the timeout: ACKed
    assert not _lines(tmp_path / "long.end")
    info = server.info()
    assert info["processed"] == 2 and info["failures"] == 1  # the long one FAILed
    assert info["retries"] == 1 and info["working"] == 0  # nothing lost, nothing stuck
    assert "terminating" in out and "failing unfinished" in out


def test_a_second_sigterm_stops_at_once(server: EmbeddedServer, tmp_path: Path) -> None:
    proc = _start_worker(server.url, "-c", "2", "--shutdown-timeout", "60")
    try:
        _push(server.url, "sleepy", str(tmp_path), "long", 60)
        wait_until(lambda: _lines(tmp_path / "long.start"), timeout=20)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "stopping now" in out
    assert server.info()["failures"] == 1


def test_tstp_quiets_and_ttin_dumps_stacks(server: EmbeddedServer, tmp_path: Path) -> None:
    proc = _start_worker(server.url, "-c", "2")
    output = _Output(proc)
    try:
        _push(server.url, "record", str(tmp_path), "first")
        wait_until(lambda: _lines(tmp_path / "first"), timeout=20)
        proc.send_signal(signal.SIGTSTP)
        proc.send_signal(signal.SIGTTIN)
        wait_until(
            lambda: "no slot fetching" in output.text(), timeout=20, what="the quiet worker's slots"
        )
        _push(server.url, "record", str(tmp_path), "second")
        time.sleep(0.5)
        assert proc.poll() is None  # quiet: still alive
        assert server.info()["queues"]["default"] == 1  # ... and not fetching
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    finally:
        proc.kill()
    out = output.text()
    assert "threads:" in out and "werk-heartbeat" in out  # the TTIN stack dump
    assert not _lines(tmp_path / "second")


class _Output:
    """Collects a child's output on a thread, so the test can wait for a log line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        self.thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.thread.start()

    def text(self) -> str:
        return "".join(self.lines)


def test_kill_9_brings_the_job_back_after_its_reservation(
    clock_server: EmbeddedServer, tmp_path: Path
) -> None:
    srv = clock_server
    proc = _start_worker(srv.url, "-c", "1")
    try:
        jid = _push(srv.url, "sleepy", str(tmp_path), "job", 60, reserve_for=60)
        wait_until(lambda: _lines(tmp_path / "job.start"), timeout=20)
        proc.kill()  # SIGKILL: no FAIL, no END
        proc.wait(10)
    finally:
        proc.kill()
    assert srv.info()["working"] == 1
    srv.advance(60 + 15)  # the reservation expires (checked every 15 s)
    wait_until(lambda: srv.info()["retries"] == 1, what="ReservationExpired")
    srv.advance(60)  # and the retry comes due
    with werk.Client(srv.url) as client:
        job = client.fetch("default")
    assert job is not None and job.jid == jid
    assert job.failure is not None and job.failure.errtype == "ReservationExpired"


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_process_executor_survives_a_crashing_child(
    server: EmbeddedServer, tmp_path: Path, how: str
) -> None:
    app = sample_jobs.app
    worker = werk.Worker(app, server.url, concurrency=2, executor="process")
    with running(worker, server):
        _push(server.url, "crash", str(tmp_path), "crash", how, retry=0)
        # Once the crash has started, its child is busy until it dies, so no later job can
        # run in it; pushed together, a quick job could run there first, legitimately.
        wait_until(lambda: _lines(tmp_path / "crash.start"), timeout=30, what="the crash")
        for i in range(10):
            _push(server.url, "record", str(tmp_path), f"ok{i}")
        wait_until(lambda: server.info()["processed"] == 11, timeout=30, what="11 jobs")
        _push(server.url, "record", str(tmp_path), "after")
        wait_until(lambda: _lines(tmp_path / "after"), timeout=30, what="a job after the crash")
    assert server.info()["failures"] == 1
    pids = {line.split()[0] for i in range(10) for line in _lines(tmp_path / f"ok{i}")}
    crashed = {line.split()[0] for line in _lines(tmp_path / "crash.start")}
    assert pids and crashed and not pids & crashed  # jobs ran in children, not in the dead one
    assert str(__import__("os").getpid()) not in pids


def test_process_executor_runs_async_jobs_and_reports_errors(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    worker = werk.Worker(sample_jobs.app, server.url, concurrency=1, executor="process")
    with running(worker, server):
        _push(server.url, "async_record", str(tmp_path), "a")
        _push(server.url, "boom", "from a child", retry=0)
        wait_until(lambda: server.info()["processed"] == 2, timeout=30)
    assert _lines(tmp_path / "a")
    assert server.info()["failures"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_server_restart_mid_run_ends_with_every_job_done(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    port = _free_port()
    data = tmp_path / "data"
    out = tmp_path / "out"
    out.mkdir()
    options = {"storage": "sqlite", "data_dir": data, "bind": f"127.0.0.1:{port}"}
    first = make_server(fetch_timeout=0.3, **options)
    url = first.url
    with werk.Client(url) as client:
        jids = [client.push("sleepy", str(out), f"j{i}", 0.2) for i in range(60)]
    worker = werk.Worker(sample_jobs.app, url, concurrency=4)
    worker.start()
    try:
        wait_until(lambda: len(list(out.iterdir())) >= 10, timeout=20, what="some progress")
        assert len(list(out.glob("*.end"))) < 50
        first.stop()  # mid-run: connections reset, jobs in flight
        second = make_server(fetch_timeout=0.3, **options)
        try:
            wait_until(
                lambda: all((out / f"j{i}.end").exists() for i in range(60)),
                timeout=30,
                what="all 60 jobs to run",
            )
            wait_until(
                lambda: (
                    second.info()["queues"].get("default", 0) == 0 and second.info()["working"] == 0
                ),
                timeout=30,
                what="nothing left queued or reserved",
            )
        finally:
            worker.stop(10)
            second.stop()
    finally:
        worker.stop(10)
    assert len(jids) == 60

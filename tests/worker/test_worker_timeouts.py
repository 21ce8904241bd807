"""Per-job timeouts, end to end: a job past its limit is FAILed with ``JobTimeout`` at its
deadline (not when its handler returns), stopped as far as its executor can, retried by the
server like any failure, and its slot keeps working.

Each test holds the overrunning handler until the FAIL is in the retry set: the FAIL cannot
have come from the handler's return. The delay between the deadline and the FAIL is printed
(``-s``) rather than asserted: wall-clock thresholds are flaky on a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from tests.worker import sample_jobs
from tests.worker.helpers import ROOT, WERK, running, subprocess_env, wait_until

import werk
from werk.server import EmbeddedServer

LIMIT = 0.5


def _retries(srv: EmbeddedServer) -> list[dict[str, Any]]:
    return [json.loads(e.payload) for e in srv.call(lambda: srv.manager.retries.ordered())]


def _timed_out(srv: EmbeddedServer, jid: str, started: float, limit: float = LIMIT) -> None:
    """Wait for ``jid``'s JobTimeout FAIL in the retry set; print how late it came."""
    wait_until(lambda: srv.info()["retries"] == 1, what="the JobTimeout FAIL")
    late = time.monotonic() - (started + limit)
    print(f"FAIL in the retry set {late:.3f} s after the deadline")
    (entry,) = _retries(srv)
    assert entry["jid"] == jid
    failure = entry["failure"]
    assert failure["errtype"] == "JobTimeout"
    assert failure["message"] == f"job exceeded its {limit:g} s timeout"
    assert failure["retry_count"] == 0  # retried like any failure (its first retry)


def _pair(app: werk.App) -> tuple[werk.JobFunction[[], None], list[str]]:
    """A job that only finishes when two of it run at the same time (both slots working)."""
    barrier = threading.Barrier(2, timeout=10)
    met: list[str] = []

    @app.job
    def pair() -> None:
        barrier.wait()
        met.append(werk.current_job().jid)

    return pair, met


def test_thread_executor_abandons_a_thread_that_ignores_its_deadline(
    server: EmbeddedServer,
) -> None:
    app = werk.App(server.url)
    started, release = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    @app.job(timeout=LIMIT)
    def stuck() -> None:
        ctx = werk.current_job()
        seen["thread"] = threading.current_thread()
        seen["deadline"] = ctx.deadline
        started.set()
        release.wait(30)
        seen["expired"] = ctx.expired

    pair, met = _pair(app)
    jid = stuck.push()
    worker = werk.Worker(app, concurrency=2, timeout_grace=0.2)
    try:
        with running(worker, server):
            assert started.wait(10)
            started_at = seen["deadline"] - LIMIT
            _timed_out(server, jid, started_at)
            wait_until(lambda: worker.abandoned_threads == 1, what="the thread abandoned")
            # Both slots work while the abandoned thread is still in its handler.
            pair.push()
            pair.push()
            wait_until(lambda: len(met) == 2, what="two jobs at once")
            release.set()
            seen["thread"].join(10)
            assert not seen["thread"].is_alive()
            assert seen["expired"] is True
            wait_until(lambda: server.info()["processed"] == 3)  # (FAILs count too)
    finally:
        release.set()
    # The late return produced no second report; the retry is still due.
    info = server.info()
    assert (info["processed"], info["failures"], info["retries"]) == (3, 1, 1), info
    assert (worker.processed, worker.failed, worker.abandoned_threads) == (2, 1, 1)
    app.close()


def test_thread_executor_cooperative_check_uses_the_workers_default(
    server: EmbeddedServer,
) -> None:
    app = werk.App(server.url)
    started = threading.Event()
    seen: dict[str, Any] = {}

    @app.job
    def polite() -> None:
        ctx = werk.current_job()
        seen["timeout"], seen["deadline"] = ctx.timeout, ctx.deadline
        started.set()
        while True:  # stops itself at the deadline
            ctx.check_deadline()
            time.sleep(0.01)

    jid = polite.push()
    worker = werk.Worker(app, concurrency=1, job_timeout=LIMIT, timeout_grace=30)
    with running(worker, server):
        assert started.wait(10)
        _timed_out(server, jid, seen["deadline"] - LIMIT)
        wait_until(lambda: worker.failed == 1)
    assert seen["timeout"] == LIMIT
    assert worker.abandoned_threads == 0  # it returned (raising JobTimeout) in time
    assert server.info()["failures"] == 1  # one report, not two
    app.close()


def test_asyncio_executor_cancels_the_task(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    started, cancelled = threading.Event(), threading.Event()
    seen: dict[str, float] = {}

    @app.job
    async def slow() -> None:
        seen["deadline"] = werk.current_job().deadline or 0.0
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    pair, met = _pair(app)
    jid = slow.with_options(timeout=LIMIT).push()
    worker = werk.Worker(app, concurrency=2, executor="asyncio")
    with running(worker, server):
        assert started.wait(10)
        _timed_out(server, jid, seen["deadline"] - LIMIT)
        wait_until(cancelled.is_set, what="the task cancelled")
        pair.push()
        pair.push()
        wait_until(lambda: len(met) == 2, what="two jobs at once")
        wait_until(lambda: server.info()["processed"] == 3)  # (FAILs count too)
    info = server.info()
    assert (info["processed"], info["failures"], info["retries"]) == (3, 1, 1), info
    app.close()


def test_process_executor_kills_and_replaces_the_child(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    worker = werk.Worker(sample_jobs.app, server.url, concurrency=2, executor="process")
    with running(worker, server), werk.Client(server.url) as client:
        jid = client.push(
            "sleepy", str(tmp_path), "slow", 30, custom={"werk_timeout": LIMIT}, retry=5
        )
        start = tmp_path / "slow.start"
        wait_until(start.exists, timeout=30, what="the job in a child")
        # The child started it a moment before it wrote the file: the delay printed is an
        # upper bound.
        started_at = time.monotonic()
        _timed_out(server, jid, started_at)
        pid = int(start.read_text().split()[0])
        wait_until(lambda: not _alive(pid), what="the child killed")
        for i in range(4):
            client.push("record", str(tmp_path), f"ok{i}")
        wait_until(lambda: server.info()["processed"] == 5, timeout=30, what="4 more jobs")
    assert not (tmp_path / "slow.end").exists()
    pids = {(tmp_path / f"ok{i}").read_text().split()[0] for i in range(4)}
    assert str(pid) not in pids
    assert server.info()["failures"] == 1


_FLAGS = ["--job-timeout", "0.5", "--shutdown-timeout", "1", "--log-level", "INFO"]


@pytest.mark.slow
def test_werk_worker_job_timeout_flag(server: EmbeddedServer, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*WERK, "worker", "tests.worker.sample_jobs:app", "-c", "2", *_FLAGS],
        cwd=ROOT,
        env=subprocess_env(server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with werk.Client(server.url) as client:
            jid = client.push("sleepy", str(tmp_path), "slow", 30)
            wait_until((tmp_path / "slow.start").exists, timeout=20, what="the job to start")
            _timed_out(server, jid, time.monotonic())  # (the printed delay: a lower bound)
            client.push("record", str(tmp_path), "after")
            wait_until((tmp_path / "after").exists, timeout=20, what="the other slot working")
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "timed out jid=" in out and "job exceeded its 0.5 s timeout" in out, out
    assert not (tmp_path / "slow.end").exists()  # the stuck thread ended with the process
    assert server.info()["failures"] == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_timeout_travels_in_custom_and_reserve_for_is_raised_to_fit() -> None:
    app = werk.App("tcp://localhost:1")

    @app.job(timeout=45, custom={"team": "web"})
    def report() -> None: ...

    job = report.to_job()
    assert job.custom == {"team": "web", "werk_timeout": 45}
    assert job.reserve_for is None  # the server's 1800 s are enough
    with pytest.warns(UserWarning, match="reserve_for=60 is shorter than timeout=45"):
        short = report.with_options(reserve_for=60)
    assert short.to_job().reserve_for == 75
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert report.with_options(timeout=3000).to_job().reserve_for == 3030
        assert report.with_options(timeout=1).to_job().custom == {"team": "web", "werk_timeout": 1}
    with pytest.raises(werk.ConfigurationError, match="timeout must be a positive number"):
        report.with_options(timeout=0)
    with pytest.raises(werk.ConfigurationError, match="timeout must be a positive number"):
        app.job(timeout="30")(lambda: None)
    assert issubclass(werk.JobTimeout, werk.FaktoryError)


def test_an_eager_run_sees_its_deadline() -> None:
    app = werk.App(eager=True)
    seen: list[tuple[float | None, bool]] = []

    @app.job(timeout=30)
    def timed() -> None:
        ctx = werk.current_job()
        assert ctx.deadline is not None and ctx.deadline > time.monotonic()
        ctx.check_deadline()  # not yet
        seen.append((ctx.timeout, ctx.expired))

    @app.job
    def untimed() -> None:
        ctx = werk.current_job()
        seen.append((ctx.deadline, ctx.expired))

    timed.push()
    untimed.push()
    assert seen == [(30.0, False), (None, False)]

"""Heartbeat, quiet and terminate (from the server), shutdown deadline, re-registration."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from tests.worker.helpers import running, wait_until

import werk
from werk.server import EmbeddedServer
from werk.worker._heartbeat import rss_kb


def _registration(srv: EmbeddedServer, wid: str) -> dict[str, Any] | None:
    def get() -> dict[str, Any] | None:
        w = srv.manager.workers.workers.get(wid)
        return None if w is None else w.to_dict()

    return srv.call(get)


def _signal(srv: EmbeddedServer, wid: str, state: str) -> None:
    # What the web UI's Busy page does.
    srv.call(lambda: srv.manager.workers.signal(wid, state))


def test_rss_is_read_from_a_padded_vmrss_line(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_bytes(b"Name:\tpython\nVmPeak:\t  999999 kB\nVmRSS:\t   48812 kB\nThreads:\t3\n")
    assert rss_kb(str(status)) == 48812
    assert (rss_kb() or 0) > 1000  # this process, for real


def test_hello_and_heartbeat_carry_identity_state_and_rss(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    worker = werk.Worker(app, concurrency=2, labels=["images", "gpu"], heartbeat_interval=0.05)
    with running(worker, server):
        wait_until(lambda: worker._heartbeat is not None and worker._heartbeat.beats >= 2)
        reg = _registration(server, worker.wid)
        assert reg is not None
        assert reg["labels"] == ["images", "gpu"]
        assert reg["pid"] > 0 and reg["hostname"]
        assert reg["rss_kb"] > 1000  # the real resident size, not 0
        assert reg["state"] == "running"
        # One wid for the process: heartbeat + 2 slots share the registration.
        assert reg["connections"] == 3
    # END on every connection: the server drops the registration with the last one.
    wait_until(lambda: _registration(server, worker.wid) is None, timeout=10, what="END")


def test_quiet_from_the_server_stops_fetching_but_finishes_running_jobs(
    server: EmbeddedServer,
) -> None:
    app = werk.App(server.url)
    release = threading.Event()
    started = threading.Event()
    done: list[str] = []

    @app.job
    def long() -> None:
        started.set()
        release.wait(10)
        done.append(werk.current_job().jid)

    @app.job
    def later() -> None:
        done.append("later")

    jid = long.push()
    worker = werk.Worker(app, concurrency=2, heartbeat_interval=0.05)
    with running(worker, server):
        assert started.wait(5)
        _signal(server, worker.wid, "quiet")
        wait_until(lambda: worker.state == "quiet", what="the quiet BEAT reply")
        # A FETCH already blocking when the worker went quiet may still deliver a job (as on
        # the real server); wait until the idle slot's FETCH came back and the slot exited.
        wait_until(lambda: getattr(worker._executor, "running", 0) == 1, what="idle slot exit")
        later.push()
        release.set()
        wait_until(lambda: server.info()["processed"] == 1, what="the running job's ACK")
        beats = worker._heartbeat.beats if worker._heartbeat else 0
        wait_until(lambda: worker._heartbeat is not None and worker._heartbeat.beats > beats + 2)
        assert not worker.wait(0)  # quiet keeps the worker alive
        assert server.info()["queues"]["default"] == 1  # "later" was not fetched
        reg = _registration(server, worker.wid)
        assert reg is not None and reg["state"] == "quiet"
    assert done == [jid]
    app.close()


def test_terminate_from_the_server_fails_jobs_still_running_at_the_deadline(
    server: EmbeddedServer,
) -> None:
    app = werk.App(server.url)
    started = threading.Event()
    never = threading.Event()
    quick_done = threading.Event()

    @app.job
    def stuck() -> None:
        started.set()
        never.wait(30)

    @app.job
    def quick() -> None:
        started.wait(5)
        quick_done.set()

    stuck.push()
    quick.push()
    worker = werk.Worker(app, concurrency=2, heartbeat_interval=0.05, shutdown_timeout=0.5)
    worker.start()
    try:
        assert started.wait(5) and quick_done.wait(5)
        _signal(server, worker.wid, "terminate")
        assert worker.wait(10), "the worker must exit after the shutdown timeout"
    finally:
        never.set()
    info = server.info()
    assert info["processed"] == 2  # one ACK, one FAIL: nothing left reserved
    assert info["failures"] == 1
    assert info["retries"] == 1 and info["working"] == 0
    wait_until(lambda: _registration(server, worker.wid) is None, timeout=10, what="END")


def test_a_forgotten_worker_registers_again_and_restates_its_state(
    clock_server: EmbeddedServer,
) -> None:
    srv = clock_server
    app = werk.App(srv.url)
    ran: list[int] = []

    @app.job
    def j(i: int) -> None:
        ran.append(i)

    worker = werk.Worker(app, concurrency=1, heartbeat_interval=0.05)
    with running(worker, srv):
        wait_until(lambda: _registration(srv, worker.wid) is not None)
        # 75 s without a BEAT on the server's clock: the reaper drops the worker and closes
        # all of its connections (the real clock barely moved, so our BEATs look stale).
        srv.advance(75)
        wait_until(lambda: srv.manager.workers.reaped >= 1, what="the reaper to drop the worker")
        wait_until(lambda: _registration(srv, worker.wid) is not None, what="re-registration")
        j.push(1)
        wait_until(lambda: ran == [1], what="a job after re-registering")
        worker.quiet()
        wait_until(lambda: (_registration(srv, worker.wid) or {}).get("state") == "quiet")
    app.close()


@pytest.mark.parametrize("executor", ["thread", "asyncio"])
def test_local_quiet_then_terminate(server: EmbeddedServer, executor: str) -> None:
    app = werk.App(server.url)
    worker = werk.Worker(app, concurrency=3, executor=executor)  # type: ignore[arg-type]
    worker.start()
    client = worker.client()  # this thread's connection as the worker
    client.info()
    worker.quiet()
    wait_until(lambda: worker.state == "quiet")
    worker.quiet()  # idempotent
    assert not worker.wait(0.3)
    worker.terminate()
    assert worker.wait(5)
    assert worker.state == "terminate"
    assert not client.connected  # the worker closed it when it stopped

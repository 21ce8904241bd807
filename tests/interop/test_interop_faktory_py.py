"""The PyPI ``faktory`` client (cdrx/faktory_worker_python) against werk's server.

That client sends HELLO without ``"v"`` and hashes the password once: the legacy path a real
server keeps for it, so werk must accept it too. Its ``Worker`` is driven one ``tick()`` at a
time (the body of its own ``run()`` loop, which ends in ``sys.exit``) on a thread pool.
Skipped when the package is not installed, unless WERK_REQUIRE_INTEROP=1.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Any

import pytest
from tests.interop.helpers import need, retries, signal_worker, workers

from werk.server import EmbeddedServer

try:
    import faktory
    from faktory.exceptions import FaktoryAuthenticationError
except ImportError:  # pragma: no cover - depends on the machine
    faktory = None

pytestmark = pytest.mark.slow  # each empty FETCH blocks 2 s, as on a real server


@pytest.fixture(autouse=True)
def _client_installed() -> None:
    need(faktory is not None, "the `faktory` package (pip install faktory)")


def add(a: int, b: int) -> int:
    return a + b


def boom(why: str) -> None:
    raise RuntimeError(f"boom: {why}")


def tick_until(worker: Any, cond: Any, what: str, timeout: float = 12.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        worker.tick()


def test_push_then_worker_acks_fails_and_obeys_beat(interop_server: EmbeddedServer) -> None:
    srv = interop_server
    url = srv.url_with_password
    with faktory.Client(url) as client:
        assert client.queue("add", args=(1, 2), jid="cdrx-add-1", custom={"from": "cdrx"})
        assert client.queue("add", args=[3, 4], queue="low", jid="cdrx-add-2")
        assert client.queue("boom", args=["kaput"], jid="cdrx-boom", retry=2)
    assert srv.info()["queues"] == {"default": 2, "low": 1}

    # The library's Worker traps SIGTERM in its constructor; give the handler back afterwards.
    previous = signal.getsignal(signal.SIGTERM)
    try:
        worker = faktory.Worker(
            faktory=url,
            queues=["default", "low"],
            use_threads=True,
            concurrency=2,
            labels=["cdrx", "interop"],
            worker_id="cdrx-interop-wid",
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    worker.send_heartbeat_every = 0  # BEAT on every tick
    worker.register("add", add)
    worker.register("boom", boom)
    try:
        # What run() does before its loop: connect, and start the heartbeat clock.
        worker.faktory.connect(worker_id=worker.worker_id)
        worker._last_heartbeat = datetime.now()
        registered = workers(srv)["cdrx-interop-wid"]
        assert registered["labels"] == ["cdrx", "interop"]
        assert registered["state"] == "running"

        tick_until(worker, lambda: srv.info()["processed"] == 3, "three ACK/FAILs")
        info = srv.info()
        assert info["queues"] == {"default": 0, "low": 0}
        assert (info["failures"], info["working"], info["retries"]) == (1, 0, 1)
        [failed] = retries(srv)
        assert failed["jid"] == "cdrx-boom"
        assert failed["failure"]["errtype"] == "RuntimeError"
        assert failed["failure"]["message"] == "boom: kaput"
        assert "backtrace" not in failed["failure"]  # this client sends none: nothing invented

        signal_worker(srv, "cdrx-interop-wid", "quiet")
        tick_until(worker, lambda: worker.is_quiet, "the BEAT reply to quiet the worker")
        assert not worker.is_disconnecting
        signal_worker(srv, "cdrx-interop-wid", "terminate")
        tick_until(worker, lambda: not worker.faktory.is_connected, "terminate to disconnect it")
        assert worker.is_disconnecting
    finally:
        if worker.faktory.is_connected:
            worker.faktory.disconnect()
        worker.executor.shutdown(wait=True)
    deadline = time.monotonic() + 15
    while "cdrx-interop-wid" in workers(srv) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "cdrx-interop-wid" not in workers(srv)


def test_wrong_password_is_refused(faktory_server_password: EmbeddedServer) -> None:
    url = faktory_server_password.url.replace("tcp://", "tcp://:wrong@")
    client = faktory.Client(url)
    with pytest.raises(FaktoryAuthenticationError):
        client.connect()
    assert faktory_server_password.info()["queues"] == {}

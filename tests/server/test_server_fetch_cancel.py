"""A job is never handed to a connection that is gone.

A worker killed while its FETCH is parked must not take the next job with it: the FETCH
is cancelled when the connection closes, and a job whose reply cannot be written goes
back to the head of its queue at once (no retry counted). What must not happen: the job
waiting out a 30-minute reservation for a dead worker. The clock is manual and never
advanced, so no reservation can expire here.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest
from tests.server.rawclient import Raw
from tests.servers import ServerFactory

from werk.server import EmbeddedServer, ManualClock

T0 = 1_800_000_000

# A worker that says hello, parks a FETCH and then waits to be killed.
_BLOCKED_WORKER = textwrap.dedent(
    """
    import socket, sys
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    sock.recv(100)
    sock.sendall(b'HELLO {"v":2,"wid":"wid-doomed","hostname":"h","pid":1}\\r\\n')
    assert sock.recv(100) == b"+OK\\r\\n"
    sock.sendall(b"FETCH default\\r\\n")
    print("parked", flush=True)
    sock.recv(1 << 20)
    """
)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll the server (on its own loop) until ``check()``; the server never sleeps here."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def parked_fetches(srv: EmbeddedServer) -> int:
    return srv.call(lambda: len(srv.manager.waiting))


def test_a_killed_worker_blocked_in_fetch_does_not_take_the_next_job(make_server: ServerFactory):
    srv = make_server(clock=ManualClock(T0), fetch_timeout=3600)
    worker = subprocess.Popen(
        [sys.executable, "-c", _BLOCKED_WORKER, str(srv.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "parked\n"
        wait_until(lambda: parked_fetches(srv) == 1, "the FETCH is parked")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()
    # The push goes out right away: it must not be handed to the dead worker even if
    # the server sees it before the close.
    with Raw(srv) as producer:
        assert producer.push("jid-after-kill-1") == "OK"
    with Raw(srv, wid="wid-alive") as other:
        job = other.fetch()
        assert job is not None and job["jid"] == "jid-after-kill-1"
        assert "failure" not in job  # never fetched, never failed: no retry counted
    assert parked_fetches(srv) == 0
    info = srv.info()
    assert info["working"] == 1 and info["failures"] == 0  # only the live fetcher's


def test_a_closed_connection_cancels_its_parked_fetch_at_once(make_server: ServerFactory):
    srv = make_server(clock=ManualClock(T0), fetch_timeout=3600)
    c = Raw(srv, wid="wid-leaves")
    c.send(b"FETCH default\r\n")
    wait_until(lambda: parked_fetches(srv) == 1, "the FETCH is parked")
    c.close()
    wait_until(lambda: parked_fetches(srv) == 0, "the FETCH is cancelled")
    with Raw(srv) as producer:
        assert producer.push("jid-for-nobody-1") == "OK"
    assert srv.info()["queues"] == {"default": 1} and srv.info()["working"] == 0


def test_a_reset_connection_cancels_its_parked_fetch(make_server: ServerFactory):
    srv = make_server(clock=ManualClock(T0), fetch_timeout=3600)
    c = Raw(srv, wid="wid-resets")
    c.send(b"FETCH default\r\n")
    wait_until(lambda: parked_fetches(srv) == 1, "the FETCH is parked")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # RST, not FIN
    wait_until(lambda: parked_fetches(srv) == 0, "the FETCH is cancelled")
    with Raw(srv) as producer, Raw(srv) as other:
        assert producer.push("jid-after-reset") == "OK"
        assert other.fetch()["jid"] == "jid-after-reset"


def _slow_reader(srv: EmbeddedServer, wid: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((srv.host, srv.port))
    sock.settimeout(10)
    sock.recv(100)
    hello = {"v": 2, "wid": wid, "hostname": "h", "pid": 1}
    sock.sendall(b"HELLO " + json.dumps(hello).encode() + b"\r\n")
    assert sock.recv(100) == b"+OK\r\n"
    return sock


def _push(c: Raw, jid: str, queue: str, pad: str = "") -> None:
    job = {"jid": jid, "jobtype": "T", "args": [pad], "queue": queue}
    assert c.cmd(b"PUSH " + json.dumps(job).encode()) == "OK"


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_a_job_reply_stuck_in_the_buffer_when_the_client_dies_goes_back_first(
    make_server: ServerFactory, tmp_path, storage
):
    # A job too big for the socket buffers: part of the reply still waits in the server
    # when the client resets the connection. The job never reached it: it goes back to
    # the head of its queue, ahead of a job pushed after it, after a restart too.
    pad = "x" * (12 * 1024 * 1024)
    options = {"data_dir": tmp_path} if storage == "sqlite" else {}
    srv = make_server(storage=storage, clock=ManualClock(T0), fetch_timeout=3600, **options)
    sock = _slow_reader(srv, "wid-slow")
    sock.sendall(b"FETCH big\r\n")
    wait_until(lambda: parked_fetches(srv) == 1, "the FETCH is parked")
    with Raw(srv) as producer, Raw(srv, wid="wid-next") as other:
        _push(producer, "jid-huge-000001", "big", pad)
        wait_until(lambda: srv.info()["working"] == 1, "the job is handed out")
        _push(producer, "jid-after-huge1", "big")
        assert sock.recv(1).startswith(b"$")  # it started to arrive, no more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
        wait_until(lambda: srv.info()["working"] == 0, "the reservation is undone")
        assert srv.info()["failures"] == 0
        if storage == "memory":
            again = other.fetch("big")
            assert again["jid"] == "jid-huge-000001" and "failure" not in again
            assert other.fetch("big")["jid"] == "jid-after-huge1"
    srv.stop()
    if storage == "sqlite":
        with Raw(make_server(storage=storage, data_dir=tmp_path)) as c:
            again = c.fetch("big")
            assert again["jid"] == "jid-huge-000001" and "failure" not in again
            assert c.fetch("big")["jid"] == "jid-after-huge1"


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_put_back_hands_the_job_to_the_next_parked_fetch(
    make_server: ServerFactory, tmp_path, storage
):
    options = {"data_dir": tmp_path} if storage == "sqlite" else {}
    srv = make_server(storage=storage, fetch_timeout=3600, **options)
    first = Raw(srv, wid="wid-first")
    first.send(b"FETCH default\r\n")
    wait_until(lambda: parked_fetches(srv) == 1, "the first FETCH is parked")
    second = Raw(srv, wid="wid-second")
    second.send(b"FETCH default\r\n")
    wait_until(lambda: parked_fetches(srv) == 2, "the second FETCH is parked")
    first.sock.shutdown(socket.SHUT_WR)
    with Raw(srv) as producer:
        assert producer.push("jid-to-second-1") == "OK"
    job = json.loads(second.read())
    assert job["jid"] == "jid-to-second-1"
    first.close()
    second.close()


async def _hello(
    srv: EmbeddedServer, wid: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    await reader.readline()
    writer.write(b'HELLO {"v":2,"wid":"' + wid.encode() + b'","hostname":"h","pid":1}\r\n')
    assert await reader.readline() == b"+OK\r\n"
    return reader, writer


async def test_a_job_is_not_written_to_a_client_whose_close_is_not_yet_read():
    # The worst timing: the client's FIN is in the server's socket but the server has not
    # read it yet when a job arrives for the parked FETCH (same loop turn). The server
    # shares this test's loop, so the test can hold the loop still at that moment.
    async with EmbeddedServer(clock=ManualClock(T0), fetch_timeout=3600) as srv:
        _, first = await _hello(srv, "wid-first")
        first.write(b"FETCH default\r\n")
        second_reader, second = await _hello(srv, "wid-second")
        second.write(b"FETCH default\r\n")
        for _ in range(1000):
            if parked_fetches(srv) == 2:
                break
            await asyncio.sleep(0)
        assert parked_fetches(srv) == 2
        (conn,) = [c for c in srv.server.connections if c.client_state.wid == "wid-first"]
        first.transport.get_extra_info("socket").shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 10
        while not conn._peer_gone():  # the FIN reached the kernel; the loop has not run
            assert time.monotonic() < deadline
        assert not conn._eof
        job = b'{"jid":"jid-not-lost-01","jobtype":"T","args":[]}'
        assert srv.manager.push_bytes(job) is None  # handed to the first FETCH: gone
        # The second FETCH gets it (a timeout, not a hang, if it went to the first).
        header = await asyncio.wait_for(second_reader.readline(), 10)
        body = await second_reader.readexactly(int(header[1:]) + 2)
        assert json.loads(body)["jid"] == "jid-not-lost-01"
        assert srv.manager.reservations["jid-not-lost-01"].wid == "wid-second"
        first.close()
        second.close()

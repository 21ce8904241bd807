"""The per-job path's shortcuts keep the general path's behaviour: one read timeout per
connection (a FETCH's extra wait restored after use), jids drawn in batches but never
shared with a forked child, and the standard library's JSON when orjson is absent."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tests.client.peer import Expect, ReadLine, ScriptedPeer, Send, Sleep

import werk
from werk._job import new_jid
from werk.client._socket_io import KERNEL_TIMEOUTS
from werk.server import EmbeddedServer

HANDSHAKE = [Send(b'+HI {"v":2}\r\n'), ReadLine(), Send(b"+OK\r\n")]


def read_timeout(client: werk.Client) -> float:
    sock = client._link.sock  # type: ignore[union-attr]
    if KERNEL_TIMEOUTS:
        timeval = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
        seconds, micros = struct.unpack("@ll", timeval)
        return float(seconds + micros / 1e6)
    return float(sock.gettimeout())


def test_a_fetch_that_outlasts_the_timeout_waits_longer_once_then_the_timeout_is_back() -> None:
    script = [
        *HANDSHAKE,
        Expect(b"FETCH q\r\n"),
        Sleep(0.5),  # longer than the 0.2 s timeout: the FETCH's extra 2 s are used
        Send(b"$-1\r\n"),
        Expect(b"FETCH q\r\n"),
        Send(b"$-1\r\n"),
    ]
    with ScriptedPeer([script]) as peer:
        client = werk.Client(peer.url, timeout=0.2)
        try:
            client.connect()
            assert read_timeout(client) == pytest.approx(0.2)
            assert client.fetch("q") is None
            assert read_timeout(client) == pytest.approx(0.2)  # restored for the next command
            assert client.fetch("q") is None
        finally:
            client.abort()


def test_commands_do_not_touch_the_read_timeout(server: EmbeddedServer) -> None:
    # FETCH and ACK alternate on a worker's connection: each used to set the timeout.
    with werk.Client(server.url, timeout=3) as client:
        client.push("T", 1)
        job = client.fetch("default")
        assert job is not None
        assert read_timeout(client) == pytest.approx(3)  # not the FETCH's 3 + 2
        client.ack(job)
        assert read_timeout(client) == pytest.approx(3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_draws_jids_of_its_own() -> None:
    new_jid()  # the parent now holds a batch of unused jids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next jid, then leave at once
        os.write(write, new_jid().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert child != new_jid()


def test_jids_are_16_url_safe_characters_and_distinct() -> None:
    jids = {new_jid() for _ in range(3000)}  # more than one batch
    assert len(jids) == 3000
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert all(len(j) == 16 and set(j) <= alphabet for j in jids)


WITHOUT_ORJSON = """
import asyncio, sys
sys.modules["orjson"] = None  # as if werk[fast] were not installed
import werk
from werk._protocol import jsonc
from werk.server import EmbeddedServer

assert jsonc.dumps is jsonc._std_dumps and jsonc.loads is jsonc._std_loads
with EmbeddedServer() as srv, werk.Client(srv.url) as client:
    jid = client.push("T", 1, "é", {"a": [1.5, None]})
    assert client.push_bulk([{"jobtype": "T", "args": [2]}, werk.Job("T", [3])]) == {}
    job = client.fetch("default")
    assert (job.jid, job.args) == (jid, [1, "é", {"a": [1.5, None]}])
    client.ack(job)

    async def main():
        async with werk.AsyncClient(srv.url) as ac:
            for _ in range(2):
                await ac.ack(await ac.fetch("default"))
            await ac.push("T", 4)
            return (await ac.info())["faktory"]["total_enqueued"]

    assert asyncio.run(main()) == 1
print("ok")
"""


def test_the_standard_library_json_path_works_end_to_end() -> None:
    src = str(Path(werk.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_ORJSON], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

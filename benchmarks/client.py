"""Client throughput and client CPU per job, next to a raw-socket baseline, in one run.

Usage::

    FAKTORY_URL=tcp://localhost:7419 python benchmarks/client.py [--jobs 20000]
    python benchmarks/client.py          # starts werk's embedded server in a subprocess

The server runs in another process, so ``time.process_time()`` here is the client's CPU
only. Each case prints jobs/s, client CPU microseconds per job, and the CPU ratio to the
raw-socket baseline of the same operation (1.00x = as cheap as hand-written socket code).
The target is at most ~25 us of client CPU per single push. The server is FLUSHed between
cases, so never point this at a server whose data you need.

An awaited command costs an event loop two turns (the reply wakes the protocol, which wakes
the caller): the "minimal asyncio protocol" rows are that floor, hand-written with one
future per command, so AsyncClient's own cost is its distance from them. With uvloop
installed (extra ``fast``) the asyncio rows are repeated on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import werk
from werk._job import new_jid
from werk._protocol import command_lines as commands
from werk._protocol.jsonc import dumps
from werk._protocol.replies import fetched_payload
from werk._protocol.resp import NEED_DATA, ReplyReader
from werk.client import parse_url

_SERVER = """
import sys, time
from werk.server import EmbeddedServer
with EmbeddedServer() as srv:
    print(srv.url, flush=True)
    sys.stdin.read()
"""


@contextmanager
def server_url() -> Iterator[str]:
    """FAKTORY_URL, else a werk embedded server in a child process."""
    url = os.environ.get("FAKTORY_URL")
    if url:
        yield url
        return
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().decode().strip()
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(10)


class Raw:
    """Hand-written socket code: the least a Python client can do per command."""

    def __init__(self, url: str) -> None:
        ep = parse_url(url)
        self.sock = socket.create_connection((ep.host, ep.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = ReplyReader()
        greeting = self.reply()
        assert isinstance(greeting, str) and greeting.startswith("HI ")
        self.sock.sendall(b'HELLO {"v":2}\r\n')
        assert self.reply() == "OK"

    def reply(self) -> Any:
        reply = self.reader.next_reply()
        while reply is NEED_DATA:
            self.reader.feed(self.sock.recv(65536))
            reply = self.reader.next_reply()
        return reply

    def push(self, n: int) -> None:
        job = {"jid": new_jid(), "jobtype": "Bench", "args": [n]}
        self.sock.sendall(b"PUSH " + dumps(job) + b"\r\n")
        if self.sock.recv(64) != b"+OK\r\n":
            raise RuntimeError("push failed")

    def push_bulk(self, jobs: list[dict[str, Any]]) -> None:
        self.sock.sendall(b"PUSHB " + dumps(jobs) + b"\r\n")
        assert self.reply() == b"{}"

    def fetch_ack(self) -> None:
        self.sock.sendall(b"FETCH bench\r\n")
        job = werk._protocol.jsonc.loads(self.reply())
        self.sock.sendall(b'ACK {"jid":"' + job["jid"].encode() + b'"}\r\n')
        assert self.reply() == "OK"

    def close(self) -> None:
        self.sock.sendall(commands.end())
        self.sock.close()


class RawAsync(asyncio.Protocol):
    """Hand-written asyncio code: one future per command, no timeouts, no error handling."""

    def __init__(self) -> None:
        self.reader = ReplyReader()
        self.waiter: asyncio.Future[Any] | None = None
        self.transport: Any = None

    @classmethod
    async def open(cls, url: str) -> RawAsync:
        ep = parse_url(url)
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(cls, ep.host, ep.port)
        greeting = await proto.call(None)
        assert isinstance(greeting, str) and greeting.startswith("HI ")
        assert await proto.call(b'HELLO {"v":2}\r\n') == "OK"
        return proto

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        if self.waiter is not None:
            reply = self.reader.next_reply()
            if reply is not NEED_DATA:
                self.waiter.set_result(reply)
                self.waiter = None

    def call(self, line: bytes | None) -> asyncio.Future[Any]:
        self.waiter = fut = asyncio.get_running_loop().create_future()
        if line is not None:
            self.transport.write(line)
        reply = self.reader.next_reply()
        if reply is not NEED_DATA:
            fut.set_result(reply)
            self.waiter = None
        return fut

    async def push(self, n: int) -> None:
        job = {"jid": new_jid(), "jobtype": "Bench", "args": [n]}
        if await self.call(b"PUSH " + dumps(job) + b"\r\n") != "OK":
            raise RuntimeError("push failed")

    async def fetch_ack(self) -> None:
        job = werk._protocol.jsonc.loads(await self.call(b"FETCH bench\r\n"))
        assert await self.call(b'ACK {"jid":"' + job["jid"].encode() + b'"}\r\n') == "OK"

    def close(self) -> None:
        self.transport.write(commands.end())
        self.transport.close()


def measure(jobs: int, run: Callable[[], None]) -> tuple[float, float]:
    """(jobs per second, client CPU microseconds per job) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return jobs / wall, cpu / jobs * 1e6


Variant = tuple[str, Callable[[int], None]]  # (name, run(count))


def rounds(
    group: str,
    variants: list[Variant],
    total: int,
    count: int,
    before: Callable[[int], None],
) -> list[tuple[str, str, float, float]]:
    """Run the variants interleaved, round after round, so that noise from other processes
    hits all of them alike; report the median rate and the lowest CPU cost per job."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    for _ in range(max(1, total // count)):
        for name, run in variants:
            before(count)
            results[name].append(measure(count, lambda run=run: run(count)))  # type: ignore[misc]
    rows = []
    for name, samples in results.items():
        rates = sorted(rate for rate, _ in samples)
        rows.append((group, name, rates[len(rates) // 2], min(cpu for _, cpu in samples)))
    return rows


def on_uvloop(cases: list[tuple[str, Callable[[int], Any]]]) -> list[Variant]:
    """The same coroutine cases run on uvloop, when it is installed."""
    try:
        import uvloop
    except ImportError:
        return []
    return [
        (f"{name}, uvloop", lambda c, case=case: uvloop.run(case(c)))  # type: ignore[misc]
        for name, case in cases
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per variant in all")
    parser.add_argument("--round", type=int, default=2000, help="jobs per variant per round")
    opts = parser.parse_args()
    n, per = opts.jobs, min(opts.round, opts.jobs)
    per -= per % 1000 if per >= 1000 else 0

    with server_url() as url:
        admin = werk.Client(url)
        raw = Raw(url)
        client = werk.Client(url)
        client.connect()

        def flush(count: int) -> None:
            admin.flush()

        def seed(count: int) -> None:
            admin.flush()
            for start in range(0, count, 1000):
                size = min(1000, count - start)
                admin.push_bulk([werk.Job("Bench", [i], queue="bench") for i in range(size)])

        async def raw_async_push(count: int) -> None:
            proto = await RawAsync.open(url)
            for i in range(count):
                await proto.push(i)
            proto.close()

        async def raw_async_fetch_ack(count: int) -> None:
            proto = await RawAsync.open(url)
            for _ in range(count):
                await proto.fetch_ack()
            proto.close()

        async def async_seq(count: int) -> None:
            async with werk.AsyncClient(url) as ac:
                for i in range(count):
                    await ac.push("Bench", i)

        async def async_pipelined(count: int) -> None:
            async with werk.AsyncClient(url) as ac:
                for start in range(0, count, 100):
                    await asyncio.gather(*(ac.push("Bench", i) for i in range(start, start + 100)))

        def push_type(count: int) -> None:
            for i in range(count):
                client.push("Bench", i)

        def push_job(count: int) -> None:
            for i in range(count):
                client.push(werk.Job("Bench", [i]))

        def raw_bulk(count: int) -> None:
            for _ in range(0, count, 1000):
                raw.push_bulk(
                    [{"jid": new_jid(), "jobtype": "Bench", "args": [i]} for i in range(1000)]
                )

        def client_bulk(count: int) -> None:
            for _ in range(0, count, 1000):
                client.push_bulk([werk.Job("Bench", [i]) for i in range(1000)])

        def client_bulk_dicts(count: int) -> None:
            for _ in range(0, count, 1000):
                client.push_bulk([{"jobtype": "Bench", "args": [i]} for i in range(1000)])

        def raw_fetch_ack(count: int) -> None:
            for _ in range(count):
                raw.fetch_ack()

        def client_fetch_ack(count: int) -> None:
            for _ in range(count):
                job = client.fetch("bench")
                assert job is not None
                client.ack(job.jid)

        fetch_line = commands.fetch(["bench"])

        def client_ack_with_fetch(count: int) -> None:
            # A worker's round trip: each ACK goes out in one write with the next FETCH.
            job = fetched_payload(client.execute(fetch_line, blocking=True))
            for _ in range(count - 1):
                assert job is not None
                lines = [commands.ack(job["jid"]), fetch_line]
                job = fetched_payload(client.execute_many(lines, blocking=True)[1])
            assert job is not None
            client.execute(commands.ack(job["jid"]))

        async def async_ack_with_fetch(count: int) -> None:
            async with werk.AsyncClient(url) as ac:
                job = fetched_payload(await ac.execute(fetch_line, blocking=True))
                for _ in range(count - 1):
                    assert job is not None
                    lines = [commands.ack(job["jid"]), fetch_line]
                    job = fetched_payload((await ac.execute_many(lines, blocking=True))[1])
                assert job is not None
                await ac.execute(commands.ack(job["jid"]))

        async def async_fetch_ack(count: int) -> None:
            async with werk.AsyncClient(url) as ac:
                for _ in range(count):
                    job = await ac.fetch("bench")
                    assert job is not None
                    await ac.ack(job.jid)

        rows = rounds(
            "push",
            [
                ("raw socket", lambda c: [raw.push(i) for i in range(c)] and None),
                ("Client.push(type, arg)", push_type),
                ("Client.push(Job)", push_job),
                ("minimal asyncio protocol, awaited", lambda c: asyncio.run(raw_async_push(c))),
                ("AsyncClient.push, awaited", lambda c: asyncio.run(async_seq(c))),
                ("AsyncClient.push, 100 pipelined", lambda c: asyncio.run(async_pipelined(c))),
                *on_uvloop(
                    [
                        ("minimal asyncio protocol, awaited", raw_async_push),
                        ("AsyncClient.push, awaited", async_seq),
                    ]
                ),
            ],
            n,
            per,
            flush,
        )
        bulk = max(per, 1000)
        rows += rounds(
            "bulk",
            [
                ("raw socket", raw_bulk),
                ("Client.push_bulk(Jobs)", client_bulk),
                ("Client.push_bulk(dicts)", client_bulk_dicts),
            ],
            max(n, bulk) * 5,
            bulk * 5,
            flush,
        )
        rows += rounds(
            "fetch+ack",
            [
                ("raw socket", raw_fetch_ack),
                ("Client.fetch + ack", client_fetch_ack),
                ("minimal asyncio protocol", lambda c: asyncio.run(raw_async_fetch_ack(c))),
                ("AsyncClient.fetch + ack", lambda c: asyncio.run(async_fetch_ack(c))),
                *on_uvloop(
                    [
                        ("minimal asyncio protocol", raw_async_fetch_ack),
                        ("AsyncClient.fetch + ack", async_fetch_ack),
                    ]
                ),
                ("Client.execute_many(ACK, FETCH)", client_ack_with_fetch),
                (
                    "AsyncClient.execute_many(ACK, FETCH)",
                    lambda c: asyncio.run(async_ack_with_fetch(c)),
                ),
            ],
            n,
            per,
            seed,
        )
        admin.flush()
        raw.close()
        client.close()
        admin.close()

    base = {g: cpu for g, name, _, cpu in rows if name == "raw socket"}
    print(f"werk client benchmark: {n} jobs per variant in rounds of {per}, server {url}")
    print("jobs/s: median round; CPU: best round (client process only; the server is elsewhere)")
    print(f"{'operation':<10} {'client':<40} {'jobs/s':>10} {'CPU us/job':>11} {'vs raw':>7}")
    for group, name, rate, cpu in rows:
        print(f"{group:<10} {name:<40} {rate:>10,.0f} {cpu:>11.1f} {cpu / base[group]:>6.2f}x")


if __name__ == "__main__":
    main()

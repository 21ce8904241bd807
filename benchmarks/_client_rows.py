"""client.py's measured code: each case connects, then returns what a child process times
(``client.py --child``), so that the child's CPU is that client's alone."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _raw import Raw, RawAsync
from _server import address

QUEUE = "bench"


def jid() -> str:
    return base64.urlsafe_b64encode(os.urandom(12)).decode()


def dumper() -> Callable[[Any], bytes]:
    try:
        import orjson

        return orjson.dumps  # type: ignore[no-any-return]
    except ImportError:
        return lambda obj: json.dumps(obj, separators=(",", ":")).encode()


def loader() -> Callable[[bytes], Any]:
    try:
        import orjson

        return orjson.loads  # type: ignore[no-any-return]
    except ImportError:
        return json.loads


def raw_push(url: str, n: int) -> Callable[[], None]:
    c, dumps = Raw(address(url)), dumper()

    def run() -> None:
        for i in range(n):
            job = {"jid": jid(), "jobtype": "Bench", "args": [i]}
            if c.call(b"PUSH " + dumps(job) + b"\r\n") != b"+OK":
                raise RuntimeError("push failed")

    return run


def raw_pushb(url: str, n: int) -> Callable[[], None]:
    c, dumps = Raw(address(url)), dumper()

    def run() -> None:
        for _ in range(0, n, 1000):
            jobs = [{"jid": jid(), "jobtype": "Bench", "args": [i]} for i in range(1000)]
            if c.call(b"PUSHB " + dumps(jobs) + b"\r\n") != b"{}":
                raise RuntimeError("push failed")

    return run


def raw_fetch_ack(url: str, n: int) -> Callable[[], None]:
    c, loads = Raw(address(url)), loader()
    fetch = f"FETCH {QUEUE}\r\n".encode()

    def run() -> None:
        for _ in range(n):
            job = loads(c.call(fetch))
            if c.call(b'ACK {"jid":"' + job["jid"].encode() + b'"}\r\n') != b"+OK":
                raise RuntimeError("ack failed")

    return run


def client_push(url: str, n: int) -> Callable[[], None]:
    import werk

    client = werk.Client(url)
    client.connect()

    def run() -> None:
        for i in range(n):
            client.push("Bench", i)

    return run


def client_pushb(url: str, n: int) -> Callable[[], None]:
    import werk

    client = werk.Client(url)
    client.connect()

    def run() -> None:
        for _ in range(0, n, 1000):
            if client.push_bulk([werk.Job("Bench", [i]) for i in range(1000)]):
                raise RuntimeError("push failed")

    return run


def client_fetch_ack(url: str, n: int) -> Callable[[], None]:
    import werk

    client = werk.Client(url)
    client.connect()

    def run() -> None:
        for _ in range(n):
            job = client.fetch(QUEUE)
            assert job is not None
            client.ack(job)

    return run


def raw_async_push(url: str, n: int) -> Callable[[], Awaitable[None]]:
    dumps = dumper()

    async def run() -> None:
        c = await RawAsync.open(address(url))
        started()
        for i in range(n):
            job = {"jid": jid(), "jobtype": "Bench", "args": [i]}
            if await c.call(b"PUSH " + dumps(job) + b"\r\n") != b"+OK":
                raise RuntimeError("push failed")

    return run


def raw_async_fetch_ack(url: str, n: int) -> Callable[[], Awaitable[None]]:
    loads = loader()
    fetch = f"FETCH {QUEUE}\r\n".encode()

    async def run() -> None:
        c = await RawAsync.open(address(url))
        started()
        for _ in range(n):
            job = loads(await c.call(fetch))
            if await c.call(b'ACK {"jid":"' + job["jid"].encode() + b'"}\r\n') != b"+OK":
                raise RuntimeError("ack failed")

    return run


def async_push(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import werk

    async def run() -> None:
        async with werk.AsyncClient(url) as client:
            started()
            for i in range(n):
                await client.push("Bench", i)

    return run


def async_push_concurrent(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import werk

    async def run() -> None:
        async with werk.AsyncClient(url) as client:
            started()
            for start in range(0, n, 100):
                await asyncio.gather(*(client.push("Bench", i) for i in range(start, start + 100)))

    return run


def async_pushb(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import werk

    async def run() -> None:
        async with werk.AsyncClient(url) as client:
            started()
            for _ in range(0, n, 1000):
                if await client.push_bulk([werk.Job("Bench", [i]) for i in range(1000)]):
                    raise RuntimeError("push failed")

    return run


def async_fetch_ack(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import werk

    async def run() -> None:
        async with werk.AsyncClient(url) as client:
            started()
            for _ in range(n):
                job = await client.fetch(QUEUE)
                assert job is not None
                await client.ack(job)

    return run


_clock: list[float] = []


def started() -> None:
    """The measured part of an asyncio case begins (after connecting)."""
    _clock[:] = [time.perf_counter(), time.process_time()]


# (group, client, case, kind): kind "raw" runs once; "werk" once per source tree.
Case = Callable[[str, int], Callable[[], Any]]
ROWS: list[tuple[str, str, Case, str]] = [
    ("push", "raw socket", raw_push, "raw"),
    ("push", "Client.push", client_push, "werk"),
    ("push", "raw asyncio protocol", raw_async_push, "raw"),
    ("push", "AsyncClient.push", async_push, "werk"),
    ("push", "AsyncClient.push, 100 concurrent", async_push_concurrent, "werk"),
    ("pushb", "raw socket", raw_pushb, "raw"),
    ("pushb", "Client.push_bulk(Jobs)", client_pushb, "werk"),
    ("pushb", "AsyncClient.push_bulk(Jobs)", async_pushb, "werk"),
    ("fetch+ack", "raw socket", raw_fetch_ack, "raw"),
    ("fetch+ack", "Client.fetch + ack", client_fetch_ack, "werk"),
    ("fetch+ack", "raw asyncio protocol", raw_async_fetch_ack, "raw"),
    ("fetch+ack", "AsyncClient.fetch + ack", async_fetch_ack, "werk"),
]
UVLOOP = {
    "raw asyncio protocol",
    "AsyncClient.push",
    "AsyncClient.push_bulk(Jobs)",
    "AsyncClient.fetch + ack",
}


def child(name: str, loop: str, url: str, n: int) -> None:
    """Run one case ``n`` jobs (after a warm-up) and print its wall and CPU seconds."""
    case = {f"{group}/{client}": case for group, client, case, _ in ROWS}[name]
    warm = case(url, 1000 if name.startswith("pushb/") else min(n, 100))
    run = case(url, n)
    if asyncio.iscoroutinefunction(run):
        runner: Callable[[Any], Any] = asyncio.run
        if loop == "uvloop":
            import uvloop

            runner = uvloop.run
        runner(warm())
        runner(run())
        wall, cpu = time.perf_counter() - _clock[0], time.process_time() - _clock[1]
    else:
        warm()
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu}))

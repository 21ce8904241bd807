"""The benchmarks' hand-written Faktory connection: blocking socket code with no werk in it,
the least a Python client can do per command."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any


class Raw:
    """One greeted connection to ``address`` (a port on 127.0.0.1, or ``(host, port)``)."""

    def __init__(self, address: int | tuple[str, int]) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", address) if isinstance(address, int) else address
        )
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.line()
        self.sock.sendall(b'HELLO {"v":2}\r\n')
        self.line()

    def line(self) -> bytes:
        """The next line the server sent, without its CRLF."""
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(1 << 20)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self) -> bytes:
        """The next reply: a bulk string's body, else its line (``$-1`` for null)."""
        line = self.line()
        if line[:1] == b"$" and line != b"$-1":
            size = int(line[1:]) + 2
            while len(self.buf) < size:
                self.buf += self.sock.recv(1 << 20)
            body, self.buf = self.buf[: size - 2], self.buf[size:]
            return body
        return line

    def call(self, line: bytes) -> bytes:
        """Send ``line`` (with its CRLF) and return the reply."""
        self.sock.sendall(line)
        return self.reply()


class RawAsync(asyncio.Protocol):
    """Hand-written asyncio code: one future per command, no timeouts, no error handling."""

    def __init__(self) -> None:
        self.buf = b""
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and b"\r\n" in self.buf:
            line, _, rest = self.buf.partition(b"\r\n")
            if line[:1] == b"$" and line != b"$-1":
                size = int(line[1:])
                if len(rest) < size + 2:
                    return
                line, rest = rest[:size], rest[size + 2 :]
            self.buf = rest
            self.waiter.set_result(line)
            self.waiter = None

    def call(self, line: bytes | None) -> asyncio.Future[bytes]:
        self.waiter = fut = asyncio.get_running_loop().create_future()
        if line is not None:
            self.transport.write(line)
        self.data_received(b"")
        return fut

    @classmethod
    async def open(cls, address: tuple[str, int]) -> RawAsync:
        """A greeted connection."""
        _, proto = await asyncio.get_running_loop().create_connection(cls, *address)
        await proto.call(None)
        await proto.call(b'HELLO {"v":2}\r\n')
        return proto


# -- rows of server.py (and its --backlog, unique.py): raw sockets, the lines built first --


def job(i: int, prefix: str = "j") -> dict[str, object]:
    return {"jid": f"{prefix}-{i:012d}", "jobtype": "Bench", "args": [i, "payload"]}


def custom_job(i: int, prefix: str = "c") -> dict[str, object]:
    return {**job(i, prefix), "queue": "custom", "custom": {"trace": f"t-{i}"}}


ARGS_100 = ["x" * 96]  # 100 bytes of JSON: the "job with 100 bytes of args"


def fat_job(i: int, prefix: str = "f") -> dict[str, object]:
    return {"jid": f"{prefix}-{i:012d}", "jobtype": "Bench", "args": ARGS_100}


def raw_push(
    address: tuple[str, int],
    n: int,
    make: Callable[[int, str], dict[str, object]] = job,
    prefix: str = "p",
) -> float:
    """Jobs per second of ``n`` single PUSHes on one connection."""
    c = Raw(address)
    lines = [b"PUSH " + json.dumps(make(i, prefix)).encode() + b"\r\n" for i in range(n)]
    start = time.perf_counter()
    for line in lines:
        c.sock.sendall(line)
        if c.line() != b"+OK":
            raise RuntimeError("push failed")
    return n / (time.perf_counter() - start)


def raw_fetch_ack(address: tuple[str, int], n: int, queue: bytes = b"default") -> float:
    """Jobs per second of ``n`` FETCH + ACK on one connection."""
    c = Raw(address)
    start = time.perf_counter()
    for _ in range(n):
        c.sock.sendall(b"FETCH " + queue + b"\r\n")
        body = c.reply()
        jid = body[body.index(b'"jid":"') + 7 :].split(b'"', 1)[0]
        c.sock.sendall(b'ACK {"jid":"' + jid + b'"}\r\n')
        c.line()
    return n / (time.perf_counter() - start)

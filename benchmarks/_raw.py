"""The benchmarks' hand-written Faktory connection: blocking socket code with no werk in it,
the least a Python client can do per command."""

from __future__ import annotations

import socket


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

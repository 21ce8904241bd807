"""A minimal raw-socket Faktory client for server tests: exact bytes out, decoded replies in.

Example::

    with Raw(srv) as c:
        assert c.cmd(b'PUSH {"jid":"jid-00000001","jobtype":"T","args":[]}') == "OK"
"""

from __future__ import annotations

import json
import socket
from types import TracebackType
from typing import Any

from werk._protocol.handshake import hello_payload, parse_greeting
from werk._protocol.resp import NEED_DATA, ReplyReader


def read_reply(sock: socket.socket, reader: ReplyReader) -> Any:
    """The next decoded reply on ``sock``; EOFError if the server closes first."""
    while True:
        reply = reader.next_reply()
        if reply is not NEED_DATA:
            return reply
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        reader.feed(chunk)


class Raw:
    """One connection: ``cmd(line)`` sends ``line + CRLF`` and returns the decoded reply."""

    def __init__(
        self,
        host_or_srv: Any,
        port: int | None = None,
        *,
        wid: str | None = None,
        password: str | None = None,
        hello: bool = True,
        timeout: float = 10.0,
    ) -> None:
        if port is None:
            host, port = host_or_srv.host, host_or_srv.port
            if password is None:
                password = getattr(host_or_srv, "password", None)
        else:
            host = host_or_srv
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = ReplyReader()
        if hello:
            greeting = parse_greeting(self.read())
            payload = hello_payload(
                greeting, password=password, wid=wid, hostname="test", pid=1, labels=["t"]
            )
            reply = self.cmd(b"HELLO " + json.dumps(payload, separators=(",", ":")).encode())
            assert reply == "OK", reply

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Any:
        return read_reply(self.sock, self.reader)

    def cmd(self, line: bytes | str) -> Any:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read()

    def push(self, jid: str, **fields: Any) -> Any:
        job = {"jid": jid, "jobtype": fields.pop("jobtype", "T"), "args": fields.pop("args", [])}
        job.update(fields)
        return self.cmd(b"PUSH " + json.dumps(job, separators=(",", ":")).encode())

    def fetch(self, *queues: str) -> dict[str, Any] | None:
        reply = self.cmd("FETCH " + " ".join(queues or ("default",)))
        return None if reply is None else json.loads(reply)

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.cmd(b"INFO"))
        return data

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

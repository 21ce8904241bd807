"""The worker's own connections: blocking sockets on the sans-I/O protocol core.

A worker needs a little more than a client: every connection says HELLO with the process's
``wid``, and the hot path writes a job's ACK (or FAIL) in the same packet as the next FETCH,
so a slot costs one write and one read per job and an ACK never waits behind a blocking
FETCH of another slot. Parsing is :class:`werk.protocol.resp.ReplyReader`; nothing here
reads bytes by itself.

Example::

    settings = ServerSettings.resolve("tcp://localhost:7419")
    conn = Connection(settings, Identity.new(labels=["python"]))
    ack_reply, job = conn.report_and_fetch(commands.ack(jid), b"FETCH default\\r\\n")
"""

from __future__ import annotations

import os
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

from werk.client.config import parse_url, resolve_url, ssl_context_for
from werk.errors import (
    ConnectError,
    ConnectionClosedError,
    NetworkError,
    NetworkTimeout,
    ProtocolError,
    RemoteProtocolError,
    ServerError,
    ShutdownInProgressError,
)
from werk.protocol import commands
from werk.protocol.handshake import hello_payload, parse_greeting
from werk.protocol.jsonc import loads
from werk.protocol.resp import NEED_DATA, ErrorReply, Reply, ReplyReader

__all__ = [
    "Connection",
    "Identity",
    "ServerSettings",
    "beat_state",
    "fetched_job",
    "hello_line",
    "is_network_error",
]


@dataclass(frozen=True)
class ServerSettings:
    """Where the server is and how to talk to it (parsed once, shared by all connections).

    Example::

        >>> s = ServerSettings.resolve("tcp+tls://:pw@faktory.example:7500")
        >>> (s.host, s.port, s.tls, s.password)
        ('faktory.example', 7500, True, 'pw')
    """

    host: str = "localhost"
    port: int = 7419
    password: str | None = None
    tls: bool = False
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    connect_timeout: float = 5.0
    timeout: float = 10.0  # read/write; FETCH itself blocks 2 s on the server
    username: str | None = None

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        *,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> ServerSettings:
        """Parse ``url`` (else ``FAKTORY_PROVIDER`` / ``FAKTORY_URL``), as the client does."""
        endpoint = parse_url(resolve_url(url))
        context = ssl_context_for(endpoint, ssl_context)
        return cls(
            host=endpoint.host,
            port=endpoint.port,
            password=password if password is not None else endpoint.password,
            tls=context is not None,
            ssl_context=context,
            server_hostname=endpoint.host,
            timeout=timeout,
            username=endpoint.username,
        )

    @property
    def display(self) -> str:
        """The URL without its password, for logs."""
        return f"{'tcp+tls' if self.tls else 'tcp'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Identity:
    """What a worker process says in every HELLO: one ``wid`` for all its connections."""

    wid: str
    hostname: str
    pid: int
    labels: tuple[str, ...] = field(default=("python",))

    @classmethod
    def new(cls, wid: str | None = None, labels: tuple[str, ...] | list[str] = ()) -> Identity:
        """A fresh identity for this process (random wid unless given)."""
        return cls(
            wid=wid or uuid.uuid4().hex[:16],
            hostname=socket.gethostname(),
            pid=os.getpid(),
            labels=tuple(labels) or ("python",),
        )


class Connection:
    """One blocking connection that reconnects on the next call after any failure.

    Not thread-safe: one per fetch slot, one for the heartbeat. Every failure closes the
    socket and raises :class:`~werk.errors.NetworkError` (or a protocol error); the next
    call dials again and says HELLO again.
    """

    def __init__(self, settings: ServerSettings, identity: Identity | None) -> None:
        self.settings = settings
        self.identity = identity
        self._sock: socket.socket | None = None
        self._reader = ReplyReader()

    @property
    def connected(self) -> bool:
        """True while a socket is open."""
        return self._sock is not None

    # -- plumbing ---------------------------------------------------------------------------

    def _open(self) -> socket.socket:
        s = self.settings
        try:
            sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout)
        except TimeoutError as exc:
            raise ConnectError(f"timed out connecting to {s.display}") from exc
        except OSError as exc:
            raise ConnectError(f"cannot connect to {s.display}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if s.tls:
                ctx = s.ssl_context or ssl.create_default_context()
                sock = ctx.wrap_socket(sock, server_hostname=s.server_hostname or s.host)
            sock.settimeout(s.timeout)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise ConnectError(f"TLS handshake with {s.display} failed: {exc}") from exc
        return sock

    def connect(self) -> None:
        """Dial, read ``HI`` and say ``HELLO`` (no-op when already connected)."""
        if self._sock is not None:
            return
        self._reader = ReplyReader()
        self._sock = self._open()
        try:
            self._send(hello_line(self.settings, self.identity, self._read()))
            self._check(self._read())
        except BaseException:
            self.close(end=False)
            raise

    def close(self, *, end: bool = True) -> None:
        """Say ``END`` (best effort, no reply expected) and close the socket."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if end:
                sock.settimeout(1.0)
                sock.sendall(commands.end())
        except OSError:
            pass
        finally:
            sock.close()

    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise ConnectionClosedError("not connected")
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            self.close(end=False)
            raise NetworkTimeout("timed out writing to the server") from exc
        except OSError as exc:
            self.close(end=False)
            raise ConnectionClosedError(f"write failed: {exc}") from exc

    def _read(self) -> Reply:
        reader = self._reader
        try:
            reply = reader.next_reply()
        except ProtocolError:
            self.close(end=False)
            raise
        while reply is NEED_DATA:
            sock = self._sock
            if sock is None:
                raise ConnectionClosedError("not connected")
            try:
                data = sock.recv(65536)
            except TimeoutError as exc:
                self.close(end=False)
                raise NetworkTimeout("timed out waiting for the server") from exc
            except OSError as exc:
                self.close(end=False)
                raise ConnectionClosedError(f"read failed: {exc}") from exc
            if not data:
                self.close(end=False)
                raise ConnectionClosedError("the server closed the connection")
            reader.feed(data)
            try:
                reply = reader.next_reply()
            except ProtocolError:
                self.close(end=False)
                raise
        return reply  # type: ignore[return-value]

    def _check(self, reply: Reply) -> Reply:
        if isinstance(reply, ErrorReply):
            exc = reply.to_exception()
            if isinstance(exc, ShutdownInProgressError):
                # The server closes the socket after this one; treat it as a network blip.
                self.close(end=False)
                raise ConnectionClosedError(f"server is shutting down: {exc}") from exc
            raise exc
        return reply

    # -- commands ---------------------------------------------------------------------------

    def command(self, line: bytes) -> Reply:
        """Send one command line and return its reply (error replies raise)."""
        self.connect()
        self._send(line)
        return self._check(self._read())

    def report_and_fetch(
        self, report: bytes | None, fetch: bytes | None
    ) -> tuple[ServerError | None, dict[str, Any] | None]:
        """Send an ACK/FAIL and the next FETCH in one write; return (report error, job).

        Either part may be ``None``. The report's error reply (e.g. ``Job not found``) is
        returned rather than raised so that the FETCH reply is still read; network errors
        raise, and then the report's fate is unknown (ACK may be repeated safely).
        """
        self.connect()
        if report is None and fetch is None:
            return None, None
        self._send(report + fetch if report and fetch else (report or fetch))  # type: ignore[arg-type]
        error: ServerError | None = None
        if report is not None:
            try:
                self._check(self._read())
            except ServerError as exc:
                error = exc
        job: dict[str, Any] | None = None
        if fetch is not None:
            try:
                job = fetched_job(self._check(self._read()))
            except ProtocolError:
                self.close(end=False)
                raise
        return error, job

    def beat(self, current_state: str | None, rss_kb: int | None) -> str | None:
        """``BEAT``; returns ``None`` while running, else ``"quiet"`` or ``"terminate"``."""
        assert self.identity is not None
        return beat_state(self.command(commands.beat(self.identity.wid, current_state, rss_kb)))


def hello_line(settings: ServerSettings, identity: Identity | None, greeting: Reply) -> bytes:
    """The HELLO line answering the server's greeting (worker identity when given)."""
    parsed = parse_greeting(greeting)
    if identity is None:
        payload = hello_payload(parsed, password=settings.password, username=settings.username)
    else:
        payload = hello_payload(
            parsed,
            password=settings.password,
            wid=identity.wid,
            hostname=identity.hostname,
            pid=identity.pid,
            labels=identity.labels,
            username=settings.username,
        )
    return commands.hello(payload)


def fetched_job(reply: Reply) -> dict[str, Any] | None:
    """The job payload of a FETCH reply, or ``None`` for ``$-1``."""
    if reply is None:
        return None
    if not isinstance(reply, (bytes, str)):
        raise RemoteProtocolError(f"unexpected FETCH reply {reply!r}")
    try:
        job = loads(reply)
    except ValueError as exc:
        raise RemoteProtocolError(f"FETCH returned invalid JSON: {exc}") from None
    if not isinstance(job, dict) or not isinstance(job.get("jid"), str):
        raise RemoteProtocolError(f"FETCH returned something that is not a job: {reply!r}")
    return job


def beat_state(reply: Reply) -> str | None:
    """``None`` for ``+OK``; ``"quiet"``/``"terminate"`` from ``{"state":...}`` (simple or bulk)."""
    if isinstance(reply, (bytes, str)) and reply != "OK":
        try:
            data = loads(reply)
        except ValueError:
            return None
        if isinstance(data, dict):
            state = data.get("state")
            return state if isinstance(state, str) and state else None
    return None


def is_network_error(exc: BaseException) -> bool:
    """True for errors after which reconnecting is the answer."""
    return isinstance(exc, (NetworkError, ProtocolError, OSError))

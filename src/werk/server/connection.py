"""One client connection: handshake, then command lines in order, replies in order.

An :class:`asyncio.Protocol` (faster than streams) over the sans-I/O pieces:
:class:`~werk._protocol.command_lines.LineReader` splits lines, the handshake helpers check HELLO,
:func:`~werk.server.commands.dispatch` runs commands. Lines are handled strictly one at a
time: while a command waits (a blocking FETCH, or the storage committing a PUSH before
its +OK) later lines stay buffered, so pipelined commands are answered in order.

Example (what a client sees)::

    S: +HI {"v":2}
    C: HELLO {"v":2}
    S: +OK
    C: INFO
    S: $612 ...
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from werk._errors import LineTooLongError
from werk._protocol.command_lines import LineReader
from werk._protocol.handshake import Greeting, HandshakeRejected, check_password, parse_hello
from werk._protocol.resp import NULL_BULK, OK, encode_bulk, encode_error
from werk.server.commands import CLOSE, ClientState, FetchWait, dispatch
from werk.server.manager import Waiter

if TYPE_CHECKING:
    from werk.server.server import Server

__all__ = ["Connection"]

log = logging.getLogger("werk.server")

_PAUSE_ABOVE = 4 * 1024 * 1024  # buffered bytes before we stop reading a busy client


class Connection(asyncio.Protocol):
    """The server side of one TCP (or TLS) connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.reader = LineReader(server.config.max_line)
        self.transport: asyncio.Transport | None = None
        self.client_state: ClientState | None = None
        self.greeting: Greeting | None = None
        self.busy = False
        self.closed = False
        self._paused = False
        self._eof = False
        self._deadline: Any = None
        self._waiter: Waiter | None = None
        self.received = 0  # bytes read from the client (tests use it to sync with the loop)

    # -- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack the same.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self.greeting = Greeting.new(bool(self.server.config.password))
        # The whole handshake must be done within 2 s, else the socket is dropped.
        self._deadline = self.server.call_later(self.server.config.handshake_timeout, self.close)
        self.transport.write(self.greeting.encode())

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.closed:
            return
        self.reader.feed(data)
        if self.busy:
            if not self._paused and self.reader.buffered > _PAUSE_ABOVE and self.transport:
                self._paused = True
                self.transport.pause_reading()
            return
        self._process()

    def eof_received(self) -> bool | None:
        # Bytes still lacking their newline are never executed; pending replies still go.
        self._eof = True
        if not self.busy:
            self.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_deadline()
        if self._waiter is not None:
            self.server.manager.cancel_waiter(self._waiter)
            self._waiter = None
        self.server.connections.discard(self)
        if self.client_state is not None:
            self.server.stats.connections -= 1
            if self.client_state.wid:
                self.server.manager.workers.remove_connection(self.client_state.wid, self)
            self.client_state = None

    # -- helpers ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket (used by END, the handshake deadline and the worker reaper)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.closed = True

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    # -- the line loop ---------------------------------------------------------------

    def _process(self) -> None:
        reader = self.reader
        while not self.busy and not self.closed:
            try:
                line = reader.next_line()
            except LineTooLongError as exc:
                self._write(encode_error(f"{exc}; closing the connection"))
                self.close()
                return
            if line is None:
                if self._eof:
                    self.close()
                    return
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return
            if self.client_state is None:
                self._handshake(line)
                continue
            if self.server.stopping:
                self._write(encode_error("shutdown in progress"))
                self.close()
                return
            reply = dispatch(self.client_state, line)
            if reply.__class__ is bytes:
                self._reply(reply)
            elif reply is CLOSE:
                self.close()
                return
            else:
                assert isinstance(reply, FetchWait)
                self._wait_fetch(reply)

    def _reply(self, data: bytes) -> None:
        # Durable storage: answer only once the command's changes are committed.
        if self.server.storage.after_commit(lambda exc: self._committed(exc, data)):
            self.busy = True
        else:
            self._write(data)

    def _committed(self, exc: BaseException | None, data: bytes) -> None:
        self.busy = False
        self._write(data if exc is None else encode_error(str(exc) or exc.__class__.__name__))
        self._process()

    def _wait_fetch(self, wait: FetchWait) -> None:
        assert self.client_state is not None
        self.busy = True
        manager = self.server.manager
        timer: list[Any] = []

        def deliver(payload: bytes | None) -> None:
            if self._waiter is None:
                return
            manager.cancel_waiter(self._waiter)
            self._waiter = None
            if timer:
                timer[0].cancel()
            self.busy = False
            self._reply(NULL_BULK if payload is None else encode_bulk(payload))
            if not self.busy:
                self._process()

        self._waiter = Waiter(wait.queues, self.client_state.wid, deliver)
        if wait.queues:
            manager.add_waiter(self._waiter)
        timer.append(self.server.call_later(self.server.config.fetch_timeout, deliver, None))

    # -- handshake -------------------------------------------------------------------

    def _handshake(self, line: bytes) -> None:
        server = self.server
        assert self.greeting is not None
        try:
            hello = parse_hello(line)
        except HandshakeRejected:
            self.close()  # the real server closes without a word
            return
        if server.config.password and not check_password(
            hello, self.greeting, server.config.password
        ):
            self._write(encode_error("Invalid password"))
            self.close()
            return
        self._cancel_deadline()
        manager = server.manager
        self.client_state = ClientState(manager, server.stats, hello.wid)
        if hello.wid:
            manager.workers.register(
                hello.wid,
                now=manager.clock.now(),
                conn=self,
                hostname=hello.hostname,
                pid=hello.pid,
                labels=hello.labels,
            )
        self._write(OK)
        server.stats.connections += 1
        if server.stats.connections > server.config.max_connections:
            self._write(encode_error(f"too many connections: {server.stats.connections}"))
            self.close()

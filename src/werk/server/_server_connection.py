"""The server side of one client connection: handshake, then command lines in order,
replies in order.

An :class:`asyncio.Protocol` (faster than streams) over the sans-I/O pieces:
:class:`~werk._protocol.command_lines.LineReader` splits lines, the handshake helpers check
HELLO, :func:`~werk.server._dispatch.dispatch` runs commands. Lines are handled strictly one at a
time: while a command waits (a blocking FETCH, or the storage committing a PUSH before
its +OK) later lines stay buffered, so pipelined commands are answered in order.

A connection never holds a job it cannot deliver: a FETCH parked on empty queues is
cancelled as soon as the client closes (EOF or reset), and a job whose FETCH reply could
not be written (the connection was gone, or died with the reply still in our buffer) goes
back to the head of its queue at once (:meth:`~werk.server._manager.Manager.put_back`).
Only a job that reached the socket waits out its reservation.

Bounds: before HELLO a line may hold :data:`HANDSHAKE_MAX_LINE` bytes, after it
``config.max_line``; a longer one is answered ``-ERR line longer than N bytes; closing
the connection`` and the connection is closed. A client that sends commands but does not
read the replies is not read from once :data:`OUTPUT_LIMIT` bytes of replies wait for it.

What it needs of its server is :class:`Listener` (the server passes itself).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, cast

from werk._errors import LineTooLongError
from werk._protocol.command_lines import LineReader
from werk._protocol.handshake import Greeting, HandshakeRejected, check_password, parse_hello
from werk._protocol.resp import (
    INVALID_PASSWORD,
    NULL_BULK,
    OK,
    SHUTDOWN_IN_PROGRESS,
    TOO_MANY_CONNECTIONS,
    encode_bulk,
    encode_error,
)
from werk.server._config import ServerConfig
from werk.server._dispatch import (
    CLOSE,
    INTERNAL_ERROR,
    ClientState,
    FetchWait,
    ServerStats,
    dispatch,
)
from werk.server._manager import Manager
from werk.server._periodic import PeriodicTasks
from werk.server._sets import Reservation
from werk.server._storage import Storage
from werk.server._sweep import MutateError, Sweep
from werk.server._waiters import Waiter

__all__ = ["HANDSHAKE_MAX_LINE", "OUTPUT_LIMIT", "Listener", "ServerConnection"]

log = logging.getLogger("werk.server")

_PAUSE_ABOVE = 4 * 1024 * 1024  # buffered bytes before we stop reading a busy client
OUTPUT_LIMIT = 4 * 1024 * 1024
"""Reply bytes waiting for a client that does not read, beyond which it is not read from."""
# Linux reports a socket's TCP state: CLOSE_WAIT once the peer has closed (its FIN is in
# even if we have not read it yet), CLOSE after a reset.
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_PEER_CLOSED = (7, 8)  # TCP_CLOSE, TCP_CLOSE_WAIT
_HIGH_WATER = 16 * 1024
HANDSHAKE_MAX_LINE = 64 * 1024
"""The longest line before HELLO is done (a HELLO is a few hundred bytes): a client that
has not even said hello cannot make the server buffer ``max_line`` bytes."""


class Listener(Protocol):
    """What a connection uses of the server that accepted it (the server is one)."""

    config: ServerConfig
    manager: Manager
    tasks: PeriodicTasks
    storage: Storage
    stats: ServerStats
    stopping: bool
    loop: asyncio.AbstractEventLoop
    connections: set[ServerConnection]

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        """Run ``callback(*args)`` after ``delay`` seconds of the server's clock."""
        ...


class ServerConnection(asyncio.Protocol):
    """The server side of one TCP (or TLS) connection."""

    def __init__(self, server: Listener) -> None:
        self.server = server
        self.reader = LineReader(min(HANDSHAKE_MAX_LINE, server.config.max_line))
        self.transport: asyncio.Transport | None = None
        self._sock: Any = None
        self.client_state: ClientState | None = None
        self.greeting: Greeting | None = None
        self.busy = False
        self.closed = False
        self._paused = False
        self._eof = False
        self._deadline: Any = None
        self._waiter: Waiter | None = None
        self._blocked = False  # replies wait in the transport's buffer (pause_writing)
        self._unsent: list[Reservation] = []  # job replies among them
        self._processing = False
        self._output_paused = False  # not reading: the client does not read its replies
        self.received = 0  # bytes read from the client (tests use it to sync with the loop)

    # -- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack the same.
        self.transport = cast(asyncio.Transport, transport)
        self._sock = transport.get_extra_info("socket")
        self.server.connections.add(self)
        # pause_writing() past 16 KiB waiting in our buffer; resume_writing() only once
        # every byte is out (not at a low-water mark). Below the mark uvloop still sends
        # all of a loop turn's replies at once.
        self.transport.set_write_buffer_limits(high=_HIGH_WATER, low=0)
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
        if self.busy:  # all read is handled: a reply waiting on a commit need not wait long
            self.server.storage.commit_early()

    def eof_received(self) -> bool | None:
        # Bytes still lacking their newline are never executed; pending replies still go,
        # but a parked FETCH is cancelled: its client is gone, a job must not wait for it.
        self._eof = True
        if self._waiter is not None:
            self.server.manager.cancel_waiter(self._waiter)
            self._waiter = None
            self.close()
        elif not self.busy:
            self.close()
        return True

    def pause_writing(self) -> None:
        self._blocked = True

    def resume_writing(self) -> None:
        self._blocked = False
        self._unsent.clear()  # every byte is out, the job replies with them
        if self._output_paused and not self.closed:
            self._output_paused = False
            if self.transport is not None and not self._paused:
                self.transport.resume_reading()
            if not self.busy:
                self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_deadline()
        manager = self.server.manager
        if self._waiter is not None:
            manager.cancel_waiter(self._waiter)
            self._waiter = None
        for res in self._unsent:
            manager.put_back(res)  # its reply never left our buffer
        self._unsent.clear()
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

    def _peer_gone(self) -> bool:
        # The client closed while its FETCH was parked, and the FIN is still unread (it
        # came in the same loop turn as the job): the job must not be written into a socket
        # nobody will read.
        if self._eof:
            return True
        if _TCP_INFO is None or self._sock is None:
            return False
        try:
            return self._sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 1)[0] in _PEER_CLOSED
        except OSError:
            return True

    def _write_job(self, data: bytes, res: Reservation) -> None:
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            self.server.manager.put_back(res)
            return
        transport.write(data)
        if transport.is_closing():  # the write failed: the connection is gone
            self.server.manager.put_back(res)
        elif self._blocked:
            # More than _HIGH_WATER bytes wait in our buffer (a big job, a client that
            # does not read): it is put back if the connection dies before they are out.
            # (A smaller remainder is out within the loop turn or the connection is reset.)
            self._unsent.append(res)

    # -- the line loop ---------------------------------------------------------------

    def _process(self) -> None:
        # Not re-entered (a TLS transport may call resume_writing() inside a write): the
        # loop below goes on with the lines itself.
        if self._processing:
            return
        self._processing = True
        try:
            self._lines()
        finally:
            self._processing = False

    def _lines(self) -> None:
        reader = self.reader
        while not self.busy and not self.closed:
            if self._blocked and self._output_full():
                return
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
                self._write(encode_error(SHUTDOWN_IN_PROGRESS))
                self.close()
                return
            state = self.client_state
            reply = dispatch(state, line)
            if reply.__class__ is bytes:
                job = state.fetched
                if job is None:
                    self._reply(reply)
                else:
                    state.fetched = None
                    self._reply(reply, job)
            elif reply is CLOSE:
                self.close()
                return
            elif isinstance(reply, FetchWait):
                self._wait_fetch(reply)
            else:
                assert isinstance(reply, Sweep)
                self.busy = True
                self.server.loop.call_soon(self._sweep, reply)

    def _output_full(self) -> bool:
        transport = self.transport
        if transport is None or transport.get_write_buffer_size() <= OUTPUT_LIMIT:
            return False
        # Read nothing more until the client has read its replies (resume_writing).
        self._output_paused = True
        transport.pause_reading()
        return True

    def _reply(self, data: bytes, job: Reservation | None = None) -> None:
        # Durable storage: answer only once the command's changes are committed.
        # A partial, not a lambda: called with the error, it is one Python frame, not two.
        if self.server.storage.after_commit(partial(self._committed, data, job)):
            self.busy = True
        elif job is None:
            self._write(data)
        else:
            self._write_job(data, job)

    def _committed(self, data: bytes, job: Reservation | None, exc: BaseException | None) -> None:
        self.busy = False
        if exc is not None:
            self._write(encode_error(str(exc) or exc.__class__.__name__))
        elif job is None:
            if not self.closed and self.transport is not None:
                self.transport.write(data)
        else:
            self._write_job(data, job)
        # Nothing more read (a lone command, the usual case): no line to look for.
        if self.reader.buffered or self._eof or self._paused:
            self._process()

    def _sweep(self, sweep: Sweep) -> None:
        # One slice per loop turn: other clients' commands run in between.
        if self.server.stopping:
            return  # what is done stays done, as after a crash
        try:
            if not sweep.step():
                self.server.loop.call_soon(self._sweep, sweep)
                return
            reply = OK
        except MutateError as exc:
            reply = encode_error(str(exc))
        except Exception:
            log.exception("internal error in MUTATE %s %s", sweep.cmd, sweep.target)
            reply = INTERNAL_ERROR
        self.busy = False
        self._reply(reply)
        if not self.busy:
            self._process()

    def _wait_fetch(self, wait: FetchWait) -> None:
        assert self.client_state is not None
        self.busy = True
        manager = self.server.manager
        timer: list[Any] = []

        def deliver(res: Reservation | None) -> None:
            if self._waiter is None:
                if res is not None:
                    manager.put_back(res)
                return
            manager.cancel_waiter(self._waiter)
            self._waiter = None
            if res is not None and self._peer_gone():
                if timer:
                    timer[0].cancel()
                self.close()
                manager.put_back(res)  # perhaps to the next blocked FETCH
                return
            if timer:
                timer[0].cancel()
            self.busy = False
            if res is None:
                self._reply(NULL_BULK)
            else:
                self._reply(encode_bulk(res.payload), res)
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
            self._write(encode_error(INVALID_PASSWORD))
            self.close()
            return
        self._cancel_deadline()
        self.reader.max_line = server.config.max_line
        manager = server.manager
        self.client_state = ClientState(manager, server.stats, server.tasks, hello.wid)
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
            self._write(encode_error(f"{TOO_MANY_CONNECTIONS}: {server.stats.connections}"))
            self.close()

"""The asyncio client's byte pump: a protocol that writes commands at once and hands each
reply to the future waiting for it.

:class:`werk.AsyncClient` owns at most one :class:`Pipeline`. The connection's
:class:`~werk._protocol.session.ClientSession` pairs replies with commands (the server
answers in order); its tokens are ``(future, allowance)``: the caller's future and how long
the reply may take.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from werk._errors import ConnectionClosedError, FaktoryError
from werk._protocol import command_lines
from werk._protocol.resp import NEED_DATA, Reply
from werk._protocol.session import ClientSession, timed_out

__all__ = ["Pipeline", "Waiter"]

Waiter = tuple["asyncio.Future[Reply]", float]
"""A session token: the future for a reply, and the seconds it may take."""


class Pipeline(asyncio.Protocol):
    """One connection: writes go out at once, replies resolve waiters in order.

    The read timeout is a watchdog: while anything is pending, the connection must make
    progress (the next reply) within the head waiter's allowance, else every waiter fails
    with NetworkTimeout and the connection is dropped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, session: ClientSession[Waiter]) -> None:
        self.loop = loop
        self.session = session
        self.transport: asyncio.Transport | None = None
        self.deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.drained: asyncio.Future[None] | None = None
        self.lost: asyncio.Future[None] = loop.create_future()

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack the same.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if not session.pending:
            # Nobody asked yet (the greeting): keep it for the next expect().
            session.receive_data(data)
            return
        # The per-call path: a lone reply (usually +OK) is read without buffering it.
        try:
            item = session.feed_and_read(data)
        except FaktoryError as exc:
            self.abort(exc)
            return
        if item is not NEED_DATA:
            fut = item[0][0]  # type: ignore[index]
            if not fut.done():  # a cancelled caller still consumes its reply
                fut.set_result(item[1])  # type: ignore[index]
            if session.pending:
                self._deliver()  # pipelined replies that came in the same read
                return
        self.deadline = self.loop.time() + session.pending[0][1] if session.pending else None

    def eof_received(self) -> bool | None:
        self.abort(self.session.hung_up())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if exc is None:
            err = self.session.hung_up()
        else:
            err = ConnectionClosedError(f"connection to {self.session.where} lost: {exc}")
            err.__cause__ = exc
        self.abort(err)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    # -- the pipeline -----------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True until the conversation is over."""
        return self.session.error is None

    def _deliver(self) -> None:
        session = self.session
        pending = session.pending
        try:
            while pending:
                item = session.next_reply()
                if item is NEED_DATA:
                    break
                fut = item[0][0]  # type: ignore[index]
                if not fut.done():  # a cancelled caller still consumes its reply
                    fut.set_result(item[1])  # type: ignore[index]
        except FaktoryError as exc:
            self.abort(exc)
            return
        self.deadline = self.loop.time() + pending[0][1] if pending else None

    def _first_in_line(self, allowance: float) -> None:
        # The first command queued on an idle connection arms the watchdog (and may already
        # have its reply, if it came before anyone asked: the greeting).
        self.deadline = self.loop.time() + allowance
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self._watchdog)
        if self.session.buffered:
            self._deliver()

    def expect(self, allowance: float) -> asyncio.Future[Reply]:
        """A future for a reply that answers no command of ours (the greeting)."""
        fut: asyncio.Future[Reply] = self.loop.create_future()
        if self.session.error is not None:
            fut.set_exception(self.session.error)
            return fut
        self.session.expect((fut, allowance))
        if len(self.session.pending) == 1:
            self._first_in_line(allowance)
        return fut

    def send(self, line: bytes, allowance: float) -> asyncio.Future[Reply]:
        """Write one command line; a future for its reply."""
        fut: asyncio.Future[Reply] = self.loop.create_future()
        session = self.session
        if session.error is not None:
            fut.set_exception(session.error)
            return fut
        self.transport.write(session.send(line, (fut, allowance)))  # type: ignore[union-attr]
        if len(session.pending) == 1:
            self._first_in_line(allowance)
        return fut

    def send_many(self, lines: Sequence[bytes], allowance: float) -> list[asyncio.Future[Reply]]:
        """Write several lines at once; one future per line for its reply, in order."""
        session = self.session
        futures: list[asyncio.Future[Reply]] = [self.loop.create_future() for _ in lines]
        if session.error is not None:
            for fut in futures:
                fut.set_exception(session.error)
            return futures
        self.transport.write(session.send_many(lines, [(fut, allowance) for fut in futures]))  # type: ignore[union-attr]
        if len(session.pending) == len(lines):
            self._first_in_line(allowance)
        return futures

    async def drain(self) -> None:
        """Wait while the transport's write buffer is full."""
        if self.paused and self.session.error is None:
            if self.drained is None:
                self.drained = self.loop.create_future()
            await self.drained

    def _watchdog(self) -> None:
        # One timer per connection, re-armed lazily: cheaper than a timer per command.
        self.timer = None
        if self.deadline is None or self.session.error is not None:
            return
        if self.loop.time() >= self.deadline:
            pending = self.session.pending
            allowance = pending[0][1] if pending else 0.0
            self.abort(timed_out(self.session.where, allowance))
        else:
            self.timer = self.loop.call_at(self.deadline, self._watchdog)

    def abort(self, error: FaktoryError, *, hard: bool = True) -> None:
        """End the conversation: every pending command fails (with the first error the
        session met) and the connection is dropped."""
        session = self.session
        waiters = session.lose(error)
        failure = session.error
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for fut, _ in waiters:
            if not fut.done():
                fut.set_exception(failure)  # type: ignore[arg-type]
                fut.exception()  # a cancelled caller must not log "never retrieved"
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        if hard and self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Write END and close (no reply is awaited)."""
        if self.transport is not None and self.session.error is None:
            self.transport.write(command_lines.end())
            self.transport.close()  # flushes END first
        self.abort(ConnectionClosedError("the client closed the connection"), hard=False)

"""The asyncio client's byte pump: a protocol that writes commands at once and hands each
reply to the future waiting for it.

:class:`werk.AsyncClient` owns at most one :class:`Pipeline`. The connection's
:class:`~werk._protocol.session.ClientSession` pairs replies with commands (the server
answers in order); its tokens are ``(target, allowance)``: where the reply goes and how long
it may take. The target is the caller's future, or, for the lines of :meth:`Pipeline.send_many`
but the last, the list that collects their replies (one future per write, not per line).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Union, cast

from werk._errors import ConnectionClosedError, FaktoryError
from werk._protocol import command_lines
from werk._protocol.resp import NEED_DATA, Reply
from werk._protocol.session import ClientSession, timed_out

__all__ = ["Pipeline", "Waiter"]

Waiter = tuple[Union["asyncio.Future[Reply]", list[Reply]], float]
"""A session token: the future (or list) for a reply, and the seconds it may take."""

# The watchdog's clock: a C call on every loop (asyncio's loop.time() is a Python method).
_monotonic = time.monotonic


def _resolve(target: asyncio.Future[Reply] | list[Reply], reply: Reply) -> None:
    if type(target) is list:
        target.append(reply)
    elif not target.done():  # type: ignore[union-attr] # a cancelled caller's reply is dropped
        target.set_result(reply)  # type: ignore[union-attr]


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
        self.deadline: float | None = None  # time.monotonic() seconds
        self.timer: asyncio.TimerHandle | None = None
        self.early = False  # bytes came before anyone asked for them (the greeting)
        self.paused = False
        self.drained: asyncio.Future[None] | None = None
        self.lost: asyncio.Future[None] = loop.create_future()

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack the same.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        session = self.session
        pending = session.pending
        if not pending:
            # Nobody asked yet (the greeting): keep it for the next expect().
            session.receive_data(data)
            self.early = True
            return
        # The per-call path: a lone reply (usually +OK) is read without buffering it.
        try:
            item = session.feed_and_read(data)
        except FaktoryError as exc:
            self.abort(exc)
            return
        if item is not NEED_DATA:
            target = item[0][0]  # type: ignore[index]
            if type(target) is list:
                target.append(item[1])  # type: ignore[index]
            elif not target.done():  # type: ignore[union-attr] # a cancelled caller's is dropped
                target.set_result(item[1])  # type: ignore[index, union-attr]
            if pending:
                self._deliver()  # pipelined replies that came in the same read
                return
            if session.error is not None:  # the server hangs up after this reply
                self.abort(session.error)
                return
            self.deadline = None
            if session.buffered:  # more than its reply came: for the next one to ask
                self.early = True
            return
        self.deadline = _monotonic() + pending[0][1]

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
                _resolve(item[0][0], item[1])  # type: ignore[index]
        except FaktoryError as exc:
            self.abort(exc)
            return
        if session.error is not None:  # the server hangs up after the last reply
            self.abort(session.error)
            return
        if pending:
            self.deadline = _monotonic() + pending[0][1]
        else:
            self.deadline = None
            self.early = session.buffered > 0

    def _first_in_line(self, allowance: float) -> None:
        # The first command queued on an idle connection arms the watchdog (and may already
        # have its reply, if it came before anyone asked: the greeting).
        self.deadline = _monotonic() + allowance
        if self.timer is None:
            self.timer = self.loop.call_later(allowance, self._watchdog)
        if self.early:
            self.early = False
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
            # The first command on an idle connection: the watchdog's deadline, inline.
            self.deadline = _monotonic() + allowance
            if self.timer is None or self.early:
                self._first_in_line(allowance)
        return fut

    def send_many(
        self, lines: Sequence[bytes], allowance: float
    ) -> tuple[asyncio.Future[Reply], list[Reply]]:
        """Write several lines at once: a future for the last line's reply, and the list
        that holds the others' replies, in order, once it is resolved."""
        session = self.session
        fut: asyncio.Future[Reply] = self.loop.create_future()
        replies: list[Reply] = []
        if session.error is not None:
            fut.set_exception(session.error)
            return fut, replies
        tokens: list[Waiter] = [(replies, allowance)] * (len(lines) - 1)
        tokens.append((fut, allowance))
        self.transport.write(session.send_many(lines, tokens))  # type: ignore[union-attr]
        if len(session.pending) == len(lines):  # as in send()
            self.deadline = _monotonic() + allowance
            if self.timer is None or self.early:
                self._first_in_line(allowance)
        return fut, replies

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
        now = _monotonic()
        if now >= self.deadline:
            pending = self.session.pending
            allowance = pending[0][1] if pending else 0.0
            self.abort(timed_out(self.session.where, allowance))
        else:
            self.timer = self.loop.call_later(self.deadline - now, self._watchdog)

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
            if type(fut) is not list and not fut.done():  # type: ignore[union-attr]
                fut.set_exception(failure)  # type: ignore[union-attr, arg-type]
                fut.exception()  # type: ignore[union-attr] # no "never retrieved" if cancelled
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

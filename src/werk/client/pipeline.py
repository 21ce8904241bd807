"""The asyncio client's connection: a protocol that pipelines commands and matches replies.

:class:`werk.AsyncClient` owns at most one :class:`Pipeline`. Writes go out at once; the
server answers in order, so replies resolve the waiting futures first-in first-out.

Example::

    pipe = Pipeline(loop, "tcp://localhost:7419")
    await loop.create_connection(lambda: pipe, "localhost", 7419)
    reply = await pipe.send(b"INFO\r\n", 5.0)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import cast

from werk.errors import ConnectionClosedError, NetworkError, NetworkTimeout, RemoteProtocolError
from werk.protocol import commands
from werk.protocol.resp import NEED_DATA, Reply, ReplyReader

__all__ = ["Pipeline"]


class Pipeline(asyncio.Protocol):
    """One connection: writes go out at once, replies resolve waiters in order.

    The read timeout is a watchdog: while anything is pending, the connection must make
    progress (the next reply) within the head waiter's allowance, else every waiter fails
    with NetworkTimeout and the connection is dropped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str) -> None:
        self.loop = loop
        self.where = where
        self.reader = ReplyReader()
        self.waiters: deque[tuple[asyncio.Future[Reply], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.failure: NetworkError | RemoteProtocolError | None = None
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
        waiters = self.waiters
        if not waiters:
            # Nobody asked yet (the greeting): keep it for the next expect().
            self.reader.feed(data)
            return
        # The per-call path: a lone reply (usually +OK) is parsed without buffering it.
        try:
            reply = self.reader.feed_and_read(data)
        except RemoteProtocolError as exc:
            self.abort(exc)
            return
        if reply is not NEED_DATA:
            fut = waiters.popleft()[0]
            if not fut.done():  # a cancelled caller still consumes its reply
                fut.set_result(reply)  # type: ignore[arg-type]
            if waiters:
                self._deliver()  # pipelined replies that came in the same read
                return
        self.deadline = self.loop.time() + waiters[0][1] if waiters else None

    def eof_received(self) -> bool | None:
        self.abort(ConnectionClosedError(f"{self.where} closed the connection"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if exc is None:
            err: NetworkError = ConnectionClosedError(f"{self.where} closed the connection")
        else:
            err = ConnectionClosedError(f"connection to {self.where} lost: {exc}")
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
        return self.failure is None

    def _deliver(self) -> None:
        waiters = self.waiters
        reader = self.reader
        try:
            while waiters:
                reply = reader.next_reply()
                if reply is NEED_DATA:
                    break
                fut = waiters.popleft()[0]
                if not fut.done():  # a cancelled caller still consumes its reply
                    fut.set_result(reply)  # type: ignore[arg-type]
        except RemoteProtocolError as exc:
            self.abort(exc)
            return
        self.deadline = self.loop.time() + waiters[0][1] if waiters else None

    def expect(self, allowance: float) -> asyncio.Future[Reply]:
        """A future for the next reply not yet claimed."""
        fut: asyncio.Future[Reply] = self.loop.create_future()
        if self.failure is not None:
            fut.set_exception(self.failure)
            return fut
        self.waiters.append((fut, allowance))
        if len(self.waiters) == 1:
            self.deadline = self.loop.time() + allowance
            if self.timer is None:
                self.timer = self.loop.call_at(self.deadline, self._watchdog)
            if self.reader.buffered:
                self._deliver()
        return fut

    def send(self, line: bytes, allowance: float) -> asyncio.Future[Reply]:
        """Write one command line; a future for its reply."""
        # expect() inlined: this runs once per awaited command.
        fut: asyncio.Future[Reply] = self.loop.create_future()
        if self.failure is not None:
            fut.set_exception(self.failure)
            return fut
        waiters = self.waiters
        waiters.append((fut, allowance))
        if len(waiters) == 1:
            self.deadline = self.loop.time() + allowance
            if self.timer is None:
                self.timer = self.loop.call_at(self.deadline, self._watchdog)
            if self.reader.buffered:
                self._deliver()
                if self.failure is not None:
                    return fut
        assert self.transport is not None
        self.transport.write(line)
        return fut

    def send_many(self, lines: Sequence[bytes], allowance: float) -> list[asyncio.Future[Reply]]:
        """Write several lines at once; one future per line for its reply, in order."""
        futures = [self.expect(allowance) for _ in lines]
        if self.failure is None:
            assert self.transport is not None
            self.transport.write(b"".join(lines))
        return futures

    async def drain(self) -> None:
        if self.paused and self.failure is None:
            if self.drained is None:
                self.drained = self.loop.create_future()
            await self.drained

    def _watchdog(self) -> None:
        # One timer per connection, re-armed lazily: cheaper than a timer per command.
        self.timer = None
        if self.deadline is None or self.failure is not None:
            return
        now = self.loop.time()
        if now >= self.deadline:
            allowance = self.waiters[0][1] if self.waiters else 0.0
            self.abort(NetworkTimeout(f"{self.where}: no answer within {allowance:g} s"))
        else:
            self.timer = self.loop.call_at(self.deadline, self._watchdog)

    def abort(self, error: NetworkError | RemoteProtocolError, *, hard: bool = True) -> None:
        """Fail every pending command with ``error`` and drop the connection."""
        if self.failure is None:
            self.failure = error
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.waiters:
            fut = self.waiters.popleft()[0]
            if not fut.done():
                fut.set_exception(self.failure)
                fut.exception()  # a cancelled caller must not log "never retrieved"
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        if hard and self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Write END and close (no reply is awaited)."""
        if self.transport is not None and self.failure is None:
            self.transport.write(commands.end())
            self.transport.close()  # flushes END first
        self.abort(ConnectionClosedError("the client closed the connection"), hard=False)

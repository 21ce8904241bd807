"""The asyncio client: :class:`werk.Client`'s commands, awaited, over one pipelined
connection. The commands themselves are Client's (see :mod:`werk.client._methods`); this
module is the byte pump that sends them."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from werk._errors import ConnectError, ConnectionClosedError, FaktoryError, NetworkError
from werk._protocol.replies import Request, raw
from werk._protocol.resp import Reply
from werk._protocol.session import timed_out
from werk.client._batch import AsyncBatch
from werk.client._methods import Sendable, _like, twin
from werk.client._pipeline import Pipeline
from werk.client._settings import ClientSettings, configured_by
from werk.client._sync import Client

__all__ = ["AsyncClient"]

P = ParamSpec("P")
T = TypeVar("T")


def _awaited(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    # twin() with AsyncClient._call's path on an open connection inline: one coroutine
    # per call rather than two, for the commands a program calls per job.
    @_like(method, "AsyncClient")
    async def awaited(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        request: Sendable[T] = method(self, *args, **kwargs)  # type: ignore[assignment]
        if type(request) is not Request:
            for each in request:  # type: ignore[union-attr] # several, one after another
                each.read(await self._call(each), each)
            return request.result  # type: ignore[union-attr]
        link = self._link
        if link is None or link.session.error is not None or link.paused:
            return request.read(await self._call(request), request)
        settings = self.settings
        fut = link.send(
            request.line, settings.fetch_timeout if request.blocking else settings.timeout
        )
        try:
            reply = await fut
        except FaktoryError as exc:
            raise self._broken(link, request, exc) from exc.__cause__
        return request.read(reply, request)

    return awaited  # type: ignore[no-any-return]


class AsyncClient:
    """An asyncio Faktory client: :class:`werk.Client`'s methods, as coroutines.

    Same arguments, methods and behaviour as :class:`werk.Client`. Concurrent calls on
    one client share its connection and are *pipelined*: each command is written at once
    and the replies, which the server sends in order, go to their callers first-in
    first-out. A FETCH may hold the server for up to 2 s, so every command queued behind it
    on the same client waits too: give fetching tasks their own client (or an
    :class:`werk.AsyncClientPool`) when that matters.

    Example::

        async with werk.AsyncClient(wid="worker-1") as client:
            jids = await asyncio.gather(*(client.push("Resize", n) for n in range(100)))
            job = await client.fetch("default")
            if job is not None:
                await client.ack(job)
    """

    @configured_by(ClientSettings)
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._link: Pipeline | None = None
        self._connecting: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<werk.AsyncClient {self.settings.endpoint} wid={self.settings.wid!r}>"

    # -- the byte pump --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a greeted connection is open."""
        return self._link is not None and self._link.alive

    async def _open(self) -> Pipeline:
        s = self.settings
        ep = s.endpoint
        loop = asyncio.get_running_loop()
        session = s.session()
        pipe = Pipeline(loop, session)
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: pipe,
                    ep.host,
                    ep.port,
                    ssl=s.ssl_context,
                    server_hostname=ep.host if s.ssl_context is not None else None,
                ),
                s.connect_timeout,
            )
        except asyncio.TimeoutError as exc:
            error = ConnectError(str(timed_out(f"connecting to {ep}", s.connect_timeout)))
            pipe.abort(error)
            raise error from exc
        except OSError as exc:
            what = "the TLS handshake with" if isinstance(exc, ssl.SSLError) else "connecting to"
            error = ConnectError(f"{what} {ep} failed: {exc}")
            pipe.abort(error)
            raise error from exc
        try:
            # Bytes that arrived before this wait are buffered and delivered at once.
            greeting = await pipe.expect(s.timeout)
            session.welcome(await pipe.send(session.hello(greeting), s.timeout))
        except FaktoryError as exc:
            pipe.abort(exc)
            raise
        except BaseException:  # cancelled
            pipe.abort(ConnectionClosedError("handshake interrupted"))
            raise
        return pipe

    async def _connection(self) -> Pipeline:
        link = self._link
        if link is not None and link.alive:
            return link
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # one handshake, however many callers are waiting
            link = self._link
            if link is None or not link.alive:
                self._link = None
                link = self._link = await self._open()
            return link

    async def _call(self, request: Request[Any], lines: Sequence[bytes] = ()) -> Any:
        # Write the request's line (or ``lines``) and await its reply (or theirs, a list).
        # (The commands and execute_many inline the path of an open, writable connection.)
        link = self._link
        if link is None or link.session.error is not None:
            try:
                link = await self._connection()
            except NetworkError as exc:
                raise request.failed(exc, sent=False) from exc.__cause__
        if link.paused:
            await link.drain()
        allowance = self.settings.fetch_timeout if request.blocking else self.settings.timeout
        try:
            if lines:
                last, reply = link.send_many(lines, allowance)
                reply.append(await last)
                return reply
            return await link.send(request.line, allowance)
        except FaktoryError as exc:
            raise self._broken(link, request, exc) from exc.__cause__

    def _forget(self, link: Pipeline) -> None:
        if self._link is link:
            self._link = None

    def _broken(self, link: Pipeline, request: Request[Any], exc: FaktoryError) -> FaktoryError:
        # What a command whose reply did not come raises; the connection is not used again.
        self._forget(link)
        if isinstance(exc, NetworkError):
            # Every pending caller got the same exception object: annotate a copy.
            return request.failed(type(exc)(*exc.args), sent=True)
        return exc  # bytes that break the protocol

    def _send(self, request: Sendable[T]) -> Sendable[T]:
        # Client's command methods end in self._send(...): on an AsyncClient it hands the
        # request back, for twin() to send (see werk.client._methods).
        return request

    async def connect(self) -> None:
        """Open and greet the connection now (otherwise the first command does it)."""
        await self._connection()

    async def close(self) -> None:
        """Say ``END`` and close the connection (no reply is awaited). Safe to call twice.

        Commands still waiting for replies fail with ConnectionClosedError. The client
        stays usable: a later call opens a new connection.
        """
        link, self._link = self._link, None
        if link is not None:
            link.close()
            await self._closed(link)

    async def abort(self) -> None:
        """Close the connection at once, without ``END``. Safe to call twice.

        Commands still waiting for replies fail with ConnectionClosedError; the next call
        opens a new connection, as after a network failure. See :meth:`werk.Client.abort`.

        Example::

            await client.abort()
            await client.info()      # reconnects
        """
        link, self._link = self._link, None
        if link is not None:
            link.abort(ConnectionClosedError("the client aborted the connection"))
            await self._closed(link)

    async def _closed(self, link: Pipeline) -> None:
        # Let the transport flush (END) and close the socket before returning.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(link.lost), self.settings.timeout)

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def execute(self, line: bytes, *, blocking: bool = False) -> Reply:
        """Send one command line; return the raw reply. See :meth:`werk.Client.execute`."""
        reply: Reply = await self._call(Request(line, raw, blocking=blocking))
        return reply

    async def execute_many(self, lines: Sequence[bytes], *, blocking: bool = False) -> list[Reply]:
        """Send several command lines in one write; return their raw replies, in order.

        See :meth:`werk.Client.execute_many`.
        """
        if not lines:
            return []
        link = self._link
        if link is None or link.session.error is not None or link.paused:
            replies: list[Reply] = await self._call(Request(b"", raw, blocking=blocking), lines)
            return replies
        # _call's path on an open connection, inline: a worker's slot comes here per job.
        settings = self.settings
        last, replies = link.send_many(
            lines, settings.fetch_timeout if blocking else settings.timeout
        )
        try:
            replies.append(await last)
        except FaktoryError as exc:
            request = Request(b"", raw, blocking=blocking)
            raise self._broken(link, request, exc) from exc.__cause__
        return replies

    # -- the commands: Client's, awaited ----------------------------------------------------

    push = _awaited(Client.push)
    push_bulk = twin(Client.push_bulk)
    fetch = _awaited(Client.fetch)
    ack = _awaited(Client.ack)
    fail = _awaited(Client.fail)
    beat = twin(Client.beat)
    info = twin(Client.info)
    flush = twin(Client.flush)
    queue_pause = twin(Client.queue_pause)
    queue_resume = twin(Client.queue_resume)
    queue_remove = twin(Client.queue_remove)
    queue_latency = twin(Client.queue_latency)
    mutate = twin(Client.mutate)
    batch_new = twin(Client.batch_new)
    batch_open = twin(Client.batch_open)
    batch_commit = twin(Client.batch_commit)
    batch_status = twin(Client.batch_status)
    track_get = twin(Client.track_get)
    track_set = twin(Client.track_set)

    # -- batches as context managers: not commands, so written for each flavour ------------

    def batch(
        self,
        *,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
        parent_bid: str | None = None,
    ) -> AsyncBatch:
        """Enterprise only: a new batch, for ``async with`` (see :meth:`werk.Client.batch`
        and :class:`werk.AsyncBatch`).

        Example::

            async with client.batch(success=werk.Job("Imported")) as batch:
                await batch.push("ImportRow", 1)
        """
        return AsyncBatch(
            self,
            description=description,
            success=success,
            complete=complete,
            parent_bid=parent_bid,
        )

    def reopen_batch(self, bid: str) -> AsyncBatch:
        """Enterprise only: an existing batch, for ``async with``: BATCH OPEN on entry,
        BATCH COMMIT on a clean exit (see :meth:`werk.Client.reopen_batch`).

        Example::

            async with client.reopen_batch(bid) as batch:
                await batch.push("ImportRow", 3)
        """
        return AsyncBatch(self, bid=bid)

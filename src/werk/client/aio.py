"""The asyncio client: the same methods as :class:`werk.Client`, awaited.

Example::

    import werk

    async with werk.AsyncClient() as client:
        jids = await asyncio.gather(*(client.push("Resize", n) for n in range(100)))

Concurrent calls on one client share its connection and are *pipelined*: each command is
written at once and the replies, which the server sends in order, are matched to callers
first-in first-out by a single reader. A FETCH may hold the server for up to 2 s, so every
command queued behind it on the same client waits too: give fetching tasks their own
client (or an :class:`werk.AsyncClientPool`) when that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from werk.client.base import (
    DEFAULT_TIMEOUT,
    BeatState,
    ClientSettings,
    batch_new_request,
    beat_request,
    beat_state,
    closes_connection,
    dict_reply,
    expect_ok,
    fail_request,
    fetch_request,
    fetched_job,
    latency_reply,
    latency_request,
    mutate_request,
    network_error,
    push_request,
    pushb_reply,
    pushb_requests,
    refused_admission,
    string_reply,
    track_set_request,
    unexpected,
)
from werk.client.mutate import Mutation
from werk.client.pipeline import Pipeline
from werk.errors import (
    ConnectError,
    ConnectionClosedError,
    FaktoryError,
    NetworkError,
    NetworkTimeout,
    RemoteProtocolError,
    ServerError,
)
from werk.job import Job
from werk.protocol import commands
from werk.protocol.resp import ErrorReply, Reply

__all__ = ["AsyncClient"]


class AsyncClient:
    """An asyncio Faktory client: :class:`werk.Client`'s methods, as coroutines.

    Same arguments and behaviour as :class:`werk.Client`; concurrent calls are pipelined
    on one connection (see the module documentation for what that means for FETCH).

    Example::

        async with werk.AsyncClient(wid="worker-1") as client:
            job = await client.fetch("default")
            if job is not None:
                await client.ack(job.jid)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        password: str | None = None,
        wid: str | None = None,
        labels: Iterable[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        hostname: str | None = None,
    ) -> None:
        self.settings = ClientSettings(
            url,
            password=password,
            wid=wid,
            labels=labels,
            timeout=timeout,
            connect_timeout=connect_timeout,
            ssl_context=ssl_context,
            hostname=hostname,
        )
        self._conn: Pipeline | None = None
        self._connecting: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<werk.AsyncClient {self.settings.endpoint} wid={self.settings.wid!r}>"

    # -- I/O ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a greeted connection is open."""
        return self._conn is not None and self._conn.alive

    async def _open(self) -> Pipeline:
        s = self.settings
        ep = s.endpoint
        loop = asyncio.get_running_loop()
        pipe = Pipeline(loop, str(ep))
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
            pipe.abort(NetworkTimeout("connect timed out"))
            raise ConnectError(
                f"connecting to {ep}: no answer within {s.connect_timeout:g} s"
            ) from exc
        except OSError as exc:
            pipe.abort(ConnectError(str(exc)))
            what = "the TLS handshake with" if isinstance(exc, ssl.SSLError) else "connecting to"
            raise ConnectError(f"{what} {ep} failed: {exc}") from exc
        try:
            # Bytes that arrived before this wait are buffered and delivered at once.
            greeting = await pipe.expect(s.timeout)
            reply = await pipe.send(s.hello_line(greeting), s.timeout)
            if reply != "OK":
                raise unexpected(reply, "HELLO")
        except ConnectionClosedError as exc:
            pipe.abort(exc)
            raise ConnectionClosedError(
                f"{ep} closed the connection during the handshake (is it a Faktory server, "
                "does it want TLS, or did it refuse our HELLO?)"
            ) from exc
        except FaktoryError as exc:
            pipe.abort(ConnectionClosedError(f"handshake failed: {exc}"))
            raise
        except BaseException:
            pipe.abort(ConnectionClosedError("handshake interrupted"))
            raise
        return pipe

    async def _connection(self) -> Pipeline:
        conn = self._conn
        if conn is not None and conn.alive:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # one handshake, however many callers are waiting
            conn = self._conn
            if conn is None or not conn.alive:
                self._conn = None
                conn = self._conn = await self._open()
            return conn

    async def _call(
        self, line: bytes, read_timeout: float | None = None, jids: Sequence[str] = ()
    ) -> Reply:
        conn = self._conn
        if conn is None or conn.failure is not None:
            try:
                conn = await self._connection()
            except NetworkError as exc:
                raise network_error(exc, sent=False, jids=jids) from exc.__cause__
        if conn.paused:
            await conn.drain()
        try:
            reply = await conn.send(line, read_timeout or self.settings.timeout)
        except NetworkError as exc:
            raise self._lost(conn, exc, jids) from exc.__cause__
        except RemoteProtocolError:
            if self._conn is conn:
                self._conn = None
            raise
        if type(reply) is ErrorReply:
            error = reply.to_exception()
            if closes_connection(error):
                conn.abort(ConnectionClosedError("the server closed the connection"))
                refused = refused_admission(error)
                if refused is not None:
                    raise refused
        return reply

    async def _call_many(self, lines: Sequence[bytes], read_timeout: float | None) -> list[Reply]:
        # _call for several commands: one write, one reply per line (kept apart from _call so
        # that the single-command path builds no list).
        conn = self._conn
        if conn is None or not conn.alive:
            try:
                conn = await self._connection()
            except NetworkError as exc:
                raise network_error(exc, sent=False) from exc.__cause__
        if conn.paused:
            await conn.drain()
        try:
            # A reply after which the server hangs up fails the later ones as a closed
            # connection: the caller learns that the rest was not answered.
            replies = [
                await fut for fut in conn.send_many(lines, read_timeout or self.settings.timeout)
            ]
        except NetworkError as exc:
            raise self._lost(conn, exc, ()) from exc.__cause__
        except RemoteProtocolError:
            if self._conn is conn:
                self._conn = None
            raise
        last = replies[-1]
        if type(last) is ErrorReply and closes_connection(last.to_exception()):
            conn.abort(ConnectionClosedError("the server closed the connection"))
        return replies

    def _lost(self, conn: Pipeline, exc: NetworkError, jids: Sequence[str]) -> NetworkError:
        if self._conn is conn:
            self._conn = None
        # Every pending caller got the same exception object: annotate a copy.
        fresh = type(exc)(*exc.args)
        return network_error(fresh, sent=True, jids=jids)

    async def connect(self) -> None:
        """Open and greet the connection now (otherwise the first command does it)."""
        await self._connection()

    async def close(self) -> None:
        """Say ``END`` and close the connection (no reply is awaited). Safe to call twice.

        Commands still waiting for replies fail with ConnectionClosedError. The client
        stays usable: a later call opens a new connection.
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            # Let the transport flush END and close the socket before returning.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.lost), self.settings.timeout)

    async def abort(self) -> None:
        """Close the connection at once, without ``END``. Safe to call twice.

        Commands still waiting for replies fail with ConnectionClosedError; the next call
        opens a new connection, as after a network failure. See :meth:`werk.Client.abort`.

        Example::

            await client.abort()
            await client.info()  # reconnects
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort(ConnectionClosedError("the client aborted the connection"))
            # Return once the transport has closed the socket.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.lost), self.settings.timeout)

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def execute(self, line: bytes, *, blocking: bool = False) -> Reply:
        """Send one command line built by :mod:`werk.protocol.commands`; return the raw reply.

        See :meth:`werk.Client.execute`.
        """
        return await self._call(line, self.settings.fetch_timeout if blocking else None)

    async def execute_many(self, lines: Sequence[bytes], *, blocking: bool = False) -> list[Reply]:
        """Send several command lines in one write; return their raw replies, in order.

        See :meth:`werk.Client.execute_many`.

        Example::

            ack, job = await client.execute_many(
                [commands.ack(jid), commands.fetch(["default"])], blocking=True
            )
        """
        if not lines:
            return []
        return await self._call_many(lines, self.settings.fetch_timeout if blocking else None)

    # -- jobs -----------------------------------------------------------------------------

    async def push(self, job_or_jobtype: Job | str, /, *args: Any, **options: Any) -> str:
        """Enqueue a job; return its jid. See :meth:`werk.Client.push`.

        Example::

            jid = await client.push("Resize", 42, queue="images")
        """
        jid, line = push_request(job_or_jobtype, args, options)
        reply = await self._call(line, None, (jid,))
        if reply != "OK":
            expect_ok(reply, "PUSH")
        return jid

    async def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """Enqueue many jobs; return ``{jid: error}`` for rejects (see ``Client.push_bulk``)."""
        errors: dict[str, str] = {}
        pushed: list[str] = []
        for jids, line in pushb_requests(jobs):
            try:
                reply = await self._call(line, None, jids)
                result = pushb_reply(reply)
            except NetworkError as exc:
                exc.pushed_jids = tuple(pushed)
                raise
            except ServerError as exc:
                result = dict.fromkeys(jids, str(exc))
            errors.update(result)
            pushed.extend(j for j in jids if j not in result)
        return errors

    async def fetch(self, *queues: str) -> Job | None:
        """Reserve the next job, or None after ~2 s. See :meth:`werk.Client.fetch`."""
        reply = await self._call(fetch_request(queues), self.settings.fetch_timeout)
        return fetched_job(reply)

    async def ack(self, jid: str) -> None:
        """Report a fetched job done."""
        reply = await self._call(commands.ack(jid))
        if reply != "OK":
            expect_ok(reply, "ACK")

    async def fail(
        self,
        jid: Job | str,
        exc_or_message: BaseException | str,
        *,
        errtype: str | None = None,
        backtrace: Sequence[str] | int | None = None,
    ) -> None:
        """Report a fetched job failed. See :meth:`werk.Client.fail`."""
        line = fail_request(jid, exc_or_message, errtype, backtrace)
        expect_ok(await self._call(line), "FAIL")

    async def beat(
        self, current_state: BeatState | None = None, rss_kb: int | None = None
    ) -> BeatState | None:
        """Heartbeat (needs ``wid``); returns None, ``"quiet"`` or ``"terminate"``."""
        line = beat_request(self.settings.require_wid(), current_state, rss_kb)
        return beat_state(await self._call(line))

    # -- admin ----------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        """Server statistics (INFO) as a dict."""
        return dict_reply(await self._call(commands.info()), "INFO")

    async def flush(self) -> None:
        """Erase every queue, set and counter (FLUSH). For tests and development."""
        expect_ok(await self._call(commands.flush()), "FLUSH")

    async def queue_pause(self, *queues: str) -> None:
        """Stop FETCH from taking jobs from these queues (``"*"``: all known queues)."""
        expect_ok(await self._call(commands.queue("PAUSE", queues)), "QUEUE PAUSE")

    async def queue_resume(self, *queues: str) -> None:
        """Undo :meth:`queue_pause` (``"*"``: all known queues)."""
        expect_ok(await self._call(commands.queue("RESUME", queues)), "QUEUE RESUME")

    async def queue_remove(self, *queues: str) -> None:
        """Delete these queues **and all their jobs** (``"*"``: every queue)."""
        expect_ok(await self._call(commands.queue("REMOVE", queues)), "QUEUE REMOVE")

    async def queue_latency(self, *queues: str) -> dict[str, float]:
        """Seconds since the oldest job of each queue was enqueued (0 when empty)."""
        return latency_reply(await self._call(latency_request(queues)))

    async def mutate(self, mutation: Mutation) -> None:
        """Kill, discard, requeue or clear jobs in the retries, scheduled or dead set."""
        expect_ok(await self._call(mutate_request(mutation)), "MUTATE")

    # -- Faktory Enterprise ---------------------------------------------------------------

    async def batch_new(
        self,
        *,
        success: Job | None = None,
        complete: Job | None = None,
        description: str | None = None,
        parent_bid: str | None = None,
    ) -> str:
        """Enterprise only: open a new batch; returns its bid. See :meth:`werk.Client.batch_new`."""
        line = batch_new_request(
            success=success, complete=complete, description=description, parent_bid=parent_bid
        )
        return string_reply(await self._call(line), "BATCH NEW")

    async def batch_open(self, bid: str) -> str:
        """Enterprise only: reopen a batch to add jobs; returns the bid."""
        return string_reply(await self._call(commands.batch_open(bid)), "BATCH OPEN")

    async def batch_commit(self, bid: str) -> None:
        """Enterprise only: close a batch (its callbacks fire once its jobs finish)."""
        expect_ok(await self._call(commands.batch_commit(bid)), "BATCH COMMIT")

    async def batch_status(self, bid: str) -> dict[str, Any]:
        """Enterprise only: a batch's counters (total, pending, failed, ...)."""
        return dict_reply(await self._call(commands.batch_status(bid)), "BATCH STATUS")

    async def track_get(self, jid: str) -> dict[str, Any]:
        """Enterprise only: a tracked job's progress (state, percent, desc, updated_at)."""
        return dict_reply(await self._call(commands.track_get(jid)), "TRACK GET")

    async def track_set(
        self,
        jid: str,
        *,
        percent: int | None = None,
        description: str | None = None,
        reserve_until: Any = None,
    ) -> None:
        """Enterprise only: report a running job's progress. See :meth:`werk.Client.track_set`."""
        line = track_set_request(
            jid, percent=percent, description=description, reserve_until=reserve_until
        )
        expect_ok(await self._call(line), "TRACK SET")

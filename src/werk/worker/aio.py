"""The asyncio executor: every slot is a task with its own connection on one event loop.

Async handlers are awaited right in their slot's task; sync handlers go to a thread pool of
``concurrency`` threads (with the job's context). As in the thread executor, a job's ACK
(or FAIL) is written in the same packet as the slot's next FETCH. The loop runs on a
thread of its own, so the worker's main thread stays free for signals and the shutdown
deadline; a handler that blocks the loop still cannot stop the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from werk.errors import (
    AuthenticationError,
    ConnectError,
    ConnectionClosedError,
    NetworkTimeout,
    ProtocolError,
    ServerError,
    ShutdownInProgressError,
)
from werk.protocol import commands
from werk.protocol.resp import NEED_DATA, ErrorReply, Reply, ReplyReader
from werk.worker.backoff import Backoff
from werk.worker.connection import (
    Identity,
    ServerSettings,
    fetched_job,
    hello_line,
    is_network_error,
)
from werk.worker.threads import report_error

if TYPE_CHECKING:
    from werk.worker.app import JobFunction
    from werk.worker.runner import InFlight
    from werk.worker.worker import Worker

__all__ = ["AsyncConnection", "AsyncSlots"]


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(NetworkTimeout("timed out waiting for the server"))


log = logging.getLogger("werk.worker")


class _ReplyProtocol(asyncio.Protocol):
    # Bytes go straight into the sans-I/O reader; a reader waits on one future at a time.
    # (asyncio streams plus wait_for cost a task per read: 3x slower per job.)

    def __init__(self) -> None:
        self.replies = ReplyReader()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.replies.feed(data)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionClosedError("the server closed the connection")
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AsyncConnection:
    """The asyncio twin of :class:`~werk.worker.connection.Connection` (same protocol core)."""

    def __init__(self, settings: ServerSettings, identity: Identity | None) -> None:
        self.settings = settings
        self.identity = identity
        self._proto: _ReplyProtocol | None = None

    async def connect(self) -> None:
        """Dial, read ``HI``, say ``HELLO`` (no-op when connected)."""
        if self._proto is not None:
            return
        s = self.settings
        ctx: ssl.SSLContext | None = None
        if s.tls:
            ctx = s.ssl_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    _ReplyProtocol,
                    s.host,
                    s.port,
                    ssl=ctx,
                    server_hostname=(s.server_hostname or s.host) if ctx else None,
                ),
                s.connect_timeout,
            )
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect to {s.display}: {exc}") from exc
        self._proto = proto
        try:
            await self._send(hello_line(s, self.identity, await self._read()))
            self._check(await self._read())
        except BaseException:
            self.close(end=False)
            raise

    def close(self, *, end: bool = True) -> None:
        """Say ``END`` (best effort) and close."""
        proto, self._proto = self._proto, None
        if proto is None or proto.transport is None:
            return
        try:
            if end and proto.lost is None:
                proto.transport.write(commands.end())
            proto.transport.close()
        except (OSError, RuntimeError):
            pass

    async def _send(self, data: bytes) -> None:
        proto = self._proto
        if proto is None or proto.transport is None or proto.lost is not None:
            self.close(end=False)
            raise ConnectionClosedError("not connected")
        try:
            proto.transport.write(data)
        except (OSError, RuntimeError) as exc:
            self.close(end=False)
            raise ConnectionClosedError(f"write failed: {exc}") from exc

    async def _read(self) -> Reply:
        proto = self._proto
        if proto is None:
            raise ConnectionClosedError("not connected")
        try:
            reply = proto.replies.next_reply()
            while reply is NEED_DATA:
                if proto.lost is not None:
                    raise ConnectionClosedError(f"connection lost: {proto.lost}")
                loop = asyncio.get_running_loop()
                waiter = proto.waiter = loop.create_future()
                timer = loop.call_later(self.settings.timeout, _expire, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    proto.waiter = None
                reply = proto.replies.next_reply()
        except (ConnectionClosedError, NetworkTimeout, ProtocolError):
            self.close(end=False)
            raise
        return reply  # type: ignore[return-value]

    def _check(self, reply: Reply) -> Reply:
        if isinstance(reply, ErrorReply):
            exc = reply.to_exception()
            if isinstance(exc, ShutdownInProgressError):
                self.close(end=False)
                raise ConnectionClosedError(f"server is shutting down: {exc}") from exc
            raise exc
        return reply

    async def report_and_fetch(
        self, report: bytes | None, fetch: bytes | None
    ) -> tuple[ServerError | None, dict[str, Any] | None]:
        """ACK/FAIL and the next FETCH in one write; see the sync ``Connection``."""
        await self.connect()
        if report is None and fetch is None:
            return None, None
        await self._send(report + fetch if report and fetch else (report or fetch))  # type: ignore[arg-type]
        error: ServerError | None = None
        if report is not None:
            try:
                self._check(await self._read())
            except ServerError as exc:
                error = exc
        job = None
        if fetch is not None:
            try:
                job = fetched_job(self._check(await self._read()))
            except ProtocolError:
                self.close(end=False)
                raise
        return error, job


class AsyncSlots:
    """``concurrency`` slot tasks on an event loop running in its own thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.pool = ThreadPoolExecutor(worker.concurrency, thread_name_prefix="werk-sync")
        self.conns: list[AsyncConnection] = []
        self._thread: threading.Thread | None = None
        self._hard_stop: asyncio.Event | None = None
        self._in_handler: set[asyncio.Task[Any] | None] = set()

    def start(self) -> None:
        """Start the loop thread and the slot tasks."""
        self._thread = threading.Thread(target=self._run, name="werk-asyncio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except RuntimeError:
            pass  # stopped at the shutdown deadline with a handler still running
        finally:
            self.worker.slots_exited()

    async def _main(self) -> None:
        self._hard_stop = asyncio.Event()
        w = self.worker
        # Bridge the worker's threading event into the loop.
        loop = self.loop
        threading.Thread(
            target=lambda: (w.hard_stop.wait(), loop.call_soon_threadsafe(self._hard_stop_set)),
            name="werk-asyncio-stop",
            daemon=True,
        ).start()
        tasks = [asyncio.create_task(self._slot(i)) for i in range(w.concurrency)]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _hard_stop_set(self) -> None:
        if self._hard_stop is not None:
            self._hard_stop.set()

    async def _pause(self, delay: float) -> None:
        assert self._hard_stop is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._hard_stop.wait(), delay)

    async def _invoke(self, flight: InFlight, fn: JobFunction[Any, Any]) -> BaseException | None:
        try:
            if fn.is_async:
                await fn.func(*flight.job.args)
            else:
                ctx = contextvars.copy_context()
                await self.loop.run_in_executor(self.pool, ctx.run, fn.func, *flight.job.args)
        except BaseException as exc:
            return exc
        return None

    async def _slot(self, index: int) -> None:
        w = self.worker
        runner = w.runner
        selector = w.selector
        conn = AsyncConnection(w.settings, w.identity)
        self.conns.append(conn)
        task = asyncio.current_task()
        backoff = Backoff()
        report: bytes | None = None
        retried = False
        try:
            while True:
                fetch = selector.next_line() if w.fetching else None
                if report is None and fetch is None:
                    break
                if w.hard_stop.is_set():
                    if report is not None:
                        w.lost_report(report)
                    break
                try:
                    error, payload = await conn.report_and_fetch(report, fetch)
                except Exception as exc:
                    if isinstance(exc, AuthenticationError):
                        w.fatal(exc)
                    elif is_network_error(exc):
                        w.outage.failed(exc)
                    elif isinstance(exc, ServerError):
                        log.error("FETCH refused: %s", exc)
                    else:
                        log.exception("unexpected error in fetch slot %d", index)
                    retried = report is not None
                    await self._pause(backoff.next_delay())
                    continue
                if w.outage.active:
                    w.outage.recovered()
                backoff.attempts = 0
                if error is not None and report is not None:
                    report_error(error, report, retried)
                report = None
                retried = False
                if payload is None:
                    continue
                if w.hard_stop.is_set():
                    try:
                        await conn.report_and_fetch(runner.refuse(payload), None)
                    except Exception as exc:
                        log.warning("could not give back a job at shutdown: %s", exc)
                    break
                flight, fn = runner.begin(payload)
                if fn is None:
                    err: BaseException | None = runner.unknown(flight.job)
                else:
                    self._in_handler.add(task)
                    try:
                        err = await self._invoke(flight, fn)
                    finally:
                        self._in_handler.discard(task)
                report = runner.finish(flight, err)
        finally:
            conn.close()

    def stop_jobs(self) -> None:
        """At the deadline: cancel the handlers still running (their jobs were FAILed).

        A sync handler's thread cannot be stopped; its task stops waiting for it.
        """

        def cancel() -> None:
            for task in list(self._in_handler):
                if task is not None:
                    task.cancel()

        if self.loop.is_running():
            self.loop.call_soon_threadsafe(cancel)

    def io_busy(self) -> bool:
        """True while a slot may be waiting for a FETCH reply."""
        return not self.worker._slots_done.is_set()

    def close(self) -> None:
        """Stop the loop's leftovers and the sync thread pool."""
        if self._thread is not None:
            self._thread.join(1.0)
        if self.loop.is_running():
            for conn in self.conns:
                self.loop.call_soon_threadsafe(conn.close)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.pool.shutdown(wait=False, cancel_futures=True)

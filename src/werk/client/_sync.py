"""The blocking client: one connection, one command in flight at a time."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import repeat
from typing import Any, TypeVar

from werk._errors import NetworkError, RemoteProtocolError
from werk._job import Job, When
from werk._protocol import command_lines
from werk._protocol.replies import BeatState, Request, ok, raw, text
from werk._protocol.resp import Reply
from werk.client import _requests as requests
from werk.client._batch import Batch
from werk.client._failure import fail_request
from werk.client._methods import Sendable
from werk.client._mutation import Mutation
from werk.client._settings import ClientSettings, configured_by
from werk.client._socket_io import SocketIO, os_error
from werk.client._status import BatchStatus, JobTrack, batch_status, job_track

__all__ = ["Client"]

T = TypeVar("T")

_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child must not talk on its parent's sockets: forget them (the parent keeps its
    # connections), and replace locks that another thread may have held at fork time.
    for client in list(_clients):
        client._lock = threading.Lock()
        link, client._link = client._link, None
        if link is not None:
            link.sock.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Client:
    """A blocking Faktory client; every command of the work protocol is a method.

    ``url`` (else ``FAKTORY_PROVIDER``/``FAKTORY_URL``, else ``tcp://localhost:7419``)
    names the server; ``password`` overrides the one in the URL. Producers leave ``wid``
    unset; a worker process passes its ``wid`` (and ``labels``) on every connection.
    ``timeout`` bounds connecting, each write and each reply (FETCH gets 2 s more, for the
    server's blocking wait). ``tcp+tls://`` verifies certificates unless ``ssl_context``
    says otherwise. See :class:`werk.client.ClientSettings` for every argument.

    A client is safe to share between threads (calls take turns), but a FETCH holds the
    connection for up to 2 s: give each thread its own client, or use
    :class:`werk.ClientPool`. A broken connection raises a :class:`werk.NetworkError` and
    the next call reconnects.

    Example::

        with werk.Client("tcp://:s3cret@faktory.internal:7419", timeout=3) as client:
            jid = client.push("Resize", 42, "large", queue="images")
            job = client.fetch("images")               # a werk.Job, or None after ~2 s
            if job is not None:
                client.ack(job)
            print(client.info()["faktory"]["total_enqueued"])
    """

    @configured_by(ClientSettings)
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._link: SocketIO | None = None
        self._lock = threading.Lock()
        _clients.add(self)

    def __repr__(self) -> str:
        return f"<werk.Client {self.settings.endpoint} wid={self.settings.wid!r}>"

    # -- the byte pump --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a greeted connection is open."""
        return self._link is not None

    def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.sock.close()

    def _connect(self, request: Request[Any] | None) -> SocketIO:
        try:
            self._link = SocketIO.open(self.settings)
        except NetworkError as exc:
            if request is None:
                raise
            raise request.failed(exc, sent=False) from exc.__cause__
        return self._link

    def _call(self, request: Request[Any], lines: Sequence[bytes] = ()) -> Any:
        # The one place the sync client does I/O after connecting: write the request's line
        # (or ``lines``), read its reply (or theirs, a list). Any failure drops the
        # connection; the next call opens a new one.
        with self._lock:
            link = self._link or self._connect(request)
            session = link.session
            try:
                if lines:
                    link.sock.sendall(session.send_many(lines, repeat(None, len(lines))))
                    reply: Any = [link.reply(request.blocking) for _ in lines]
                else:
                    link.sock.sendall(session.send(request.line, None))
                    reply = link.reply(request.blocking)
            except OSError as exc:
                raise self._lost(exc, request) from exc
            except NetworkError as exc:
                raise self._lost(exc, request) from exc.__cause__
            except RemoteProtocolError:
                self._drop()
                raise
            if session.error is not None:
                self._drop()  # the server hangs up after the last reply
            return reply

    def _send(self, request: Sendable[T]) -> T:
        # Every command method ends here: send what it built, return what the reply means.
        # (AsyncClient runs the same methods; its _send hands the request back to be sent
        # and awaited: see werk.client._methods.)
        if type(request) is Request:
            return request.read(self._call(request), request)
        for each in request:  # type: ignore[union-attr] # several requests, one after another
            each.read(self._call(each), each)
        return request.result  # type: ignore[union-attr]

    def _lost(self, exc: OSError | NetworkError, request: Request[Any]) -> NetworkError:
        # The connection broke after the command was (maybe) sent: drop it, say what happened.
        self._drop()
        if isinstance(exc, OSError):
            timeout = self.settings.fetch_timeout if request.blocking else self.settings.timeout
            exc = os_error(exc, f"talking to {self.settings.endpoint}", timeout)
        return request.failed(exc, sent=True)

    def connect(self) -> None:
        """Open and greet the connection now (otherwise the first command does it)."""
        with self._lock:
            if self._link is None:
                self._connect(None)

    def close(self) -> None:
        """Say ``END`` and close the connection (no reply is awaited). Safe to call twice.

        The client stays usable: a later call opens a new connection.
        """
        with self._lock:
            link, self._link = self._link, None
            if link is None:
                return
            try:
                link.sock.sendall(command_lines.end())
            except OSError:
                pass
            finally:
                link.sock.close()

    def abort(self) -> None:
        """Close the connection at once, without ``END``. Safe to call twice.

        The server sees the connection drop as it would after a network failure, and the
        client behaves as after one: the next call opens a new connection. Use it to give
        up on a server that stopped answering, or to cut a connection in a test.

        A call blocked on this connection in another thread (a FETCH) fails at once with
        :class:`werk.ConnectionClosedError`.

        Example::

            client.abort()
            client.info()      # reconnects
        """
        link, self._link = self._link, None  # not under the lock: a FETCH may hold it
        if link is not None:
            with contextlib.suppress(OSError):
                link.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
            link.sock.close()

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def execute(self, line: bytes, *, blocking: bool = False) -> Reply:
        """Send one command line; return the raw reply.

        The low-level path for runtimes that build their own commands: no interpretation,
        so an error reply comes back as a :class:`werk.client.ErrorReply` value.
        ``blocking=True`` allows for the server's 2 s FETCH wait.

        Example::

            reply = client.execute(b'ACK {"jid":"0123456789abcdef"}\\r\\n')    # 'OK'
        """
        reply: Reply = self._call(Request(line, raw, blocking=blocking))
        return reply

    def execute_many(self, lines: Sequence[bytes], *, blocking: bool = False) -> list[Reply]:
        """Send several command lines in one write; return their raw replies, in order.

        One round trip instead of ``len(lines)``: a worker sends a job's ACK together with
        its next FETCH. Replies are not interpreted (error replies come back as
        :class:`werk.client.ErrorReply` values); a reply after which the server hangs up
        fails the rest as a lost connection. Failures behave as in :meth:`execute`, and
        ``blocking=True`` allows for a FETCH among the lines.

        Example::

            ack, job = client.execute_many([ack_line, b"FETCH default\\r\\n"], blocking=True)
        """
        if not lines:
            return []
        replies: list[Reply] = self._call(Request(b"", raw, blocking=blocking), lines)
        return replies

    # -- jobs -----------------------------------------------------------------------------

    def push(
        self,
        job_or_jobtype: Job | str,
        /,
        *args: Any,
        jid: str | None = None,
        queue: str | None = None,
        retry: int | None = None,
        reserve_for: int | None = None,
        at: When | None = None,
        backtrace: int | None = None,
        custom: Mapping[str, Any] | None = None,
        unique_for: float | timedelta | None = None,
        unique_until: str | None = None,
        expires_in: float | timedelta | None = None,
        expires_at: datetime | str | None = None,
    ) -> str:
        """Enqueue a job; return its jid.

        ``push(job)`` sends a :class:`werk.Job`; ``push("Type", *args, ...)`` builds one:
        ``queue`` (default ``"default"``), ``retry`` (25), ``reserve_for`` (seconds),
        ``at`` (an aware datetime, a timedelta from now or an RFC3339 string),
        ``backtrace`` (lines to keep), ``custom`` (a JSON object), ``jid`` (a new one),
        and the options of unique and expiring jobs, as on :class:`werk.Job`
        (``unique_for``, ``unique_until``, ``expires_in``, ``expires_at``).
        Invalid jobs raise :class:`werk.JobValidationError` before anything is sent; a
        unique job's duplicate raises :class:`werk.NotUniqueError` (with its ``jid``).

        Example::

            jid = client.push("Resize", 42, queue="images", at=timedelta(minutes=5))
            client.push("Report", 7, unique_for=timedelta(hours=1), expires_in=600)
        """
        return self._send(
            requests.push(
                job_or_jobtype,
                args,
                jid,
                queue,
                retry,
                reserve_for,
                at,
                backtrace,
                custom,
                unique_for,
                unique_until,
                expires_in,
                expires_at,
            )
        )

    def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """Enqueue many jobs (PUSHB, 1000 per command); return ``{jid: error}`` for rejects.

        Every job is validated before the first is sent. An error reply to a whole chunk is
        reported for each of its jobs in the result. A NetworkError says which jobs were
        pushed (``pushed_jids``) and which may have been (``unknown_jids``).

        Example::

            errors = client.push_bulk(Job("Resize", [n]) for n in range(5000))
            assert errors == {}
        """
        return self._send(requests.BulkPush(jobs))

    def fetch(self, *queues: str) -> Job | None:
        """Reserve the next job from the first non-empty queue (in the order given).

        Waits up to ~2 s server-side; returns None when there is nothing. No queue means
        ``"default"``. The job must then be :meth:`ack`\\ ed or :meth:`fail`\\ ed.

        Example::

            job = client.fetch("critical", "default")
        """
        return self._send(requests.fetch(queues))

    def ack(self, jid: Job | str) -> None:
        """Report a fetched job done: the Job, or its jid (an unknown jid is accepted
        silently by the server).

        Example::

            client.ack(job)
        """
        return self._send(Request(command_lines.ack(jid.jid if isinstance(jid, Job) else jid), ok))

    def fail(
        self,
        jid: Job | str,
        exc_or_message: BaseException | str,
        *,
        errtype: str | None = None,
        backtrace: Sequence[str] | int | None = None,
    ) -> None:
        """Report a fetched job failed: the Job, or its jid; the server retries or buries it.

        ``errtype`` defaults to the exception's class name; the backtrace comes from the
        exception's traceback, capped by the job's ``backtrace`` (pass the Job instead of its
        jid for that) or by an int ``backtrace``; a list of strings is sent as is.
        Raises :class:`werk.JobNotFoundError` when the job is not reserved.

        Example::

            try:
                run(job)
            except Exception as exc:
                client.fail(job, exc)
        """
        return self._send(fail_request(jid, exc_or_message, errtype, backtrace))

    def beat(
        self, current_state: BeatState | None = None, rss_kb: int | None = None
    ) -> BeatState | None:
        """Heartbeat for this worker (needs ``wid``); returns None, ``"quiet"`` or ``"terminate"``.

        Example::

            if client.beat(rss_kb=51200) == "terminate":
                shutdown()
        """
        return self._send(requests.beat(self.settings.require_wid(), current_state, rss_kb))

    # -- admin ----------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Server statistics (INFO) as a dict: ``faktory``, ``server``, ``now``..."""
        return self._send(requests.INFO)

    def flush(self) -> None:
        """Erase every queue, set and counter (FLUSH). For tests and development."""
        return self._send(requests.FLUSH)

    def queue_pause(self, *queues: str) -> None:
        """Stop FETCH from taking jobs from these queues (``"*"``: all known queues)."""
        return self._send(Request(command_lines.queue("PAUSE", queues), ok))

    def queue_resume(self, *queues: str) -> None:
        """Undo :meth:`queue_pause` (``"*"``: all known queues)."""
        return self._send(Request(command_lines.queue("RESUME", queues), ok))

    def queue_remove(self, *queues: str) -> None:
        """Delete these queues **and all their jobs** (``"*"``: every queue)."""
        return self._send(Request(command_lines.queue("REMOVE", queues), ok))

    def queue_latency(self, *queues: str) -> dict[str, float]:
        """Seconds since the oldest job of each queue was enqueued (0 when empty)."""
        return self._send(requests.latency_of(queues))

    def mutate(self, mutation: Mutation) -> None:
        """Kill, discard, requeue or clear jobs in the retries, scheduled or dead set.

        Example::

            client.mutate(Mutation.requeue(Target.DEAD).jobtype("Resize"))
        """
        return self._send(requests.mutate(mutation))

    # -- Faktory Enterprise ---------------------------------------------------------------

    def batch_new(
        self,
        *,
        success: Job | None = None,
        complete: Job | None = None,
        description: str | None = None,
        parent_bid: str | None = None,
    ) -> str:
        """Enterprise only: open a new batch; returns its bid. Jobs join it with
        ``custom={"bid": bid}``; commit it with :meth:`batch_commit`.

        On Faktory OSS this raises :class:`werk.EnterpriseOnlyError`.
        """
        return self._send(requests.batch_new(success, complete, description, parent_bid))

    def batch_open(self, bid: str) -> str:
        """Enterprise only: reopen a batch to add jobs; returns the bid."""
        return self._send(Request(command_lines.batch_open(bid), text))

    def batch_commit(self, bid: str) -> None:
        """Enterprise only: close a batch (its callbacks fire once its jobs finish)."""
        return self._send(Request(command_lines.batch_commit(bid), ok))

    def batch_status(self, bid: str) -> BatchStatus:
        """Enterprise only: a batch's counters and callback states, as a
        :class:`werk.BatchStatus`.

        Example::

            status = client.batch_status(bid)
            print(status.pending, status.success_state)
        """
        return self._send(Request(command_lines.batch_status(bid), batch_status))

    def track_get(self, jid: str) -> JobTrack:
        """Enterprise only: a job's progress (state, percent, desc, updated_at), as a
        :class:`werk.JobTrack`.

        Example::

            track = client.track_get(jid)
            print(track.state, track.percent)
        """
        return self._send(Request(command_lines.track_get(jid), job_track))

    def track_set(
        self,
        jid: str,
        *,
        percent: int | None = None,
        description: str | None = None,
        reserve_until: Any = None,
    ) -> None:
        """Enterprise only: report a running job's progress; ``reserve_until`` extends its
        reservation (an aware datetime or RFC3339 string)."""
        return self._send(requests.track_set(jid, percent, description, reserve_until))

    def batch(
        self,
        *,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
        parent_bid: str | None = None,
    ) -> Batch:
        """Enterprise only: a new batch, as a context manager (see :class:`werk.Batch`).

        ``success`` and ``complete`` are the callback jobs (at least one): a
        :class:`werk.Job`, or a typed job function's ``fn.to_job(...)`` (a bare job function
        means its job with no arguments). ``parent_bid`` makes it a child batch. Entering
        sends BATCH NEW; a clean exit commits; a block that raises leaves it uncommitted
        (its callbacks never fire, it expires after 30 minutes).

        Example::

            with client.batch(description="import", success=werk.Job("Imported")) as batch:
                batch.push("ImportRow", 1)
                import_row.push(2)                # a typed job function joins it too
        """
        return Batch(
            self,
            description=description,
            success=success,
            complete=complete,
            parent_bid=parent_bid,
        )

    def reopen_batch(self, bid: str) -> Batch:
        """Enterprise only: an existing batch, to add members: entering sends BATCH OPEN,
        a clean exit commits it again (see :class:`werk.Batch`).

        Example::

            with client.reopen_batch(bid) as batch:
                batch.push("ImportRow", 3)
        """
        return Batch(self, bid=bid)

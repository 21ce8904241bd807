"""The blocking client: one connection, one command in flight at a time.

Example::

    import werk

    with werk.Client() as client:                  # FAKTORY_URL, else localhost:7419
        jid = client.push("Resize", 42, "large", queue="images")
        job = client.fetch("images")               # a werk.Job, or None after ~2 s
        if job is not None:
            client.ack(job.jid)

A client is safe to share between threads (calls take turns), but a FETCH holds the
connection for up to 2 s: give each thread its own client, or use :class:`werk.ClientPool`.
A broken connection raises a :class:`werk.NetworkError` and the next call reconnects.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import weakref
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
from werk.client.socket_conn import KERNEL_TIMEOUTS, Connection, os_error
from werk.errors import (
    ConnectError,
    ConnectionClosedError,
    FaktoryError,
    NetworkError,
    RemoteProtocolError,
    ServerError,
)
from werk.job import Job
from werk.protocol import commands
from werk.protocol.resp import ErrorReply, Reply

__all__ = ["Client"]

_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child must not talk on its parent's sockets: forget them (the parent keeps its
    # connections), and replace locks that another thread may have held at fork time.
    for client in list(_clients):
        client._lock = threading.Lock()
        conn, client._conn = client._conn, None
        if conn is not None:
            conn.sock.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Client:
    """A blocking Faktory client; every command of the work protocol is a method.

    ``url`` (else ``FAKTORY_PROVIDER``/``FAKTORY_URL``, else ``tcp://localhost:7419``)
    names the server; ``password`` overrides the one in the URL. Producers leave ``wid``
    unset; a worker process passes its ``wid`` (and ``labels``) on every connection.
    ``timeout`` bounds connecting, each write and each reply (FETCH gets 2 s more, for the
    server's blocking wait). ``tcp+tls://`` verifies certificates unless ``ssl_context``
    says otherwise.

    Example::

        with werk.Client("tcp://:s3cret@faktory.internal:7419", timeout=3) as client:
            client.push("SendEmail", "ann@example.com", retry=5)
            print(client.info()["faktory"]["total_enqueued"])
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
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        _clients.add(self)

    def __repr__(self) -> str:
        return f"<werk.Client {self.settings.endpoint} wid={self.settings.wid!r}>"

    # -- I/O ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a greeted connection is open."""
        return self._conn is not None

    def _open(self) -> Connection:
        s = self.settings
        ep = s.endpoint
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=s.connect_timeout)
        except OSError as exc:
            err = os_error(exc, f"connecting to {ep}", s.connect_timeout)
            raise ConnectError(str(err)) from exc
        conn: Connection | None = None
        stage = "the TLS handshake with" if s.ssl_context else "the handshake with"
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if s.ssl_context is not None:
                sock = s.ssl_context.wrap_socket(sock, server_hostname=ep.host)
            stage = "the handshake with"
            conn = Connection(sock, s.timeout, KERNEL_TIMEOUTS and s.ssl_context is None)
            greeting = conn.read_reply()
            conn.sock.sendall(s.hello_line(greeting))
            reply = conn.read_reply()
            if reply != "OK":
                raise unexpected(reply, "HELLO")
        except ssl.SSLError as exc:
            sock.close()
            raise ConnectError(f"{stage} {ep} failed: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise os_error(exc, f"{stage} {ep}", s.timeout) from exc
        except ConnectionClosedError as exc:
            sock.close()
            raise ConnectionClosedError(
                f"{ep} closed the connection during the handshake (is it a Faktory server, "
                "does it want TLS, or did it refuse our HELLO?)"
            ) from exc
        except FaktoryError:
            sock.close()
            raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.sock.close()

    def _call(
        self, line: bytes, read_timeout: float | None = None, jids: Sequence[str] = ()
    ) -> Reply:
        # The one place the sync client does I/O after connecting: write one command, read
        # one reply. Any failure drops the connection; the next call opens a new one.
        with self._lock:
            conn = self._conn
            if conn is None:
                try:
                    conn = self._open()
                except NetworkError as exc:
                    raise network_error(exc, sent=False, jids=jids) from exc.__cause__
            timeout = read_timeout or self.settings.timeout
            try:
                if conn.read_timeout != timeout:
                    conn.set_read_timeout(timeout)
                conn.sock.sendall(line)
                reply = conn.read_reply()
            except OSError as exc:
                raise self._lost(exc, timeout, jids) from exc
            except NetworkError as exc:
                raise self._lost(exc, timeout, jids) from None
            except RemoteProtocolError:
                self._drop()
                raise
            if type(reply) is ErrorReply:
                error = reply.to_exception()
                if closes_connection(error):
                    self._drop()
                    refused = refused_admission(error)
                    if refused is not None:
                        raise refused
            return reply

    def _call_many(self, lines: Sequence[bytes], read_timeout: float | None) -> list[Reply]:
        # _call for several commands: one write, then exactly one reply per line, in order.
        # (Kept apart from _call so that the single-command path builds no list.)
        with self._lock:
            conn = self._conn
            if conn is None:
                try:
                    conn = self._open()
                except NetworkError as exc:
                    raise network_error(exc, sent=False) from exc.__cause__
            timeout = read_timeout or self.settings.timeout
            try:
                if conn.read_timeout != timeout:
                    conn.set_read_timeout(timeout)
                conn.sock.sendall(b"".join(lines))
                # A reply after which the server hangs up makes the next read fail as a
                # closed connection: the caller learns that the rest was not answered.
                replies = [conn.read_reply() for _ in lines]
            except OSError as exc:
                raise self._lost(exc, timeout, ()) from exc
            except NetworkError as exc:
                raise self._lost(exc, timeout, ()) from None
            except RemoteProtocolError:
                self._drop()
                raise
            last = replies[-1]
            if type(last) is ErrorReply and closes_connection(last.to_exception()):
                self._drop()
            return replies

    def _lost(
        self, exc: OSError | NetworkError, timeout: float, jids: Sequence[str]
    ) -> NetworkError:
        # The connection broke after the command was (maybe) sent: drop it, say what happened.
        self._drop()
        if isinstance(exc, OSError):
            exc = os_error(exc, f"talking to {self.settings.endpoint}", timeout)
        return network_error(exc, sent=True, jids=jids)

    def connect(self) -> None:
        """Open and greet the connection now (otherwise the first command does it)."""
        with self._lock:
            if self._conn is None:
                self._open()

    def close(self) -> None:
        """Say ``END`` and close the connection (no reply is awaited). Safe to call twice.

        The client stays usable: a later call opens a new connection.
        """
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                conn.sock.sendall(commands.end())
            except OSError:
                pass
            finally:
                conn.sock.close()

    def abort(self) -> None:
        """Close the connection at once, without ``END``. Safe to call twice.

        The server sees the connection drop as it would after a network failure, and the
        client behaves as after one: the next call opens a new connection. Use it to cut
        a connection in tests, or to give up on a server that stopped answering.

        Example::

            client.abort()
            client.info()  # reconnects
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.sock.close()

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def execute(self, line: bytes, *, blocking: bool = False) -> Reply:
        """Send one command line built by :mod:`werk.protocol.commands`; return the raw reply.

        The low-level path for runtimes that build their own commands: no interpretation,
        so an error reply comes back as an :class:`~werk.protocol.resp.ErrorReply` value.
        ``blocking=True`` allows for the server's 2 s FETCH wait.

        Example::

            reply = client.execute(commands.ack(jid))    # 'OK'
        """
        return self._call(line, self.settings.fetch_timeout if blocking else None)

    def execute_many(self, lines: Sequence[bytes], *, blocking: bool = False) -> list[Reply]:
        """Send several command lines in one write; return their raw replies, in order.

        One round trip instead of ``len(lines)``: a worker sends a job's ACK together with
        its next FETCH. Replies are not interpreted (error replies come back as
        :class:`~werk.protocol.resp.ErrorReply` values), failures behave as in
        :meth:`execute`, and ``blocking=True`` allows for a FETCH among the lines.

        Example::

            ack, job = client.execute_many(
                [commands.ack(jid), commands.fetch(["default"])], blocking=True
            )
        """
        if not lines:
            return []
        return self._call_many(lines, self.settings.fetch_timeout if blocking else None)

    # -- jobs -----------------------------------------------------------------------------

    def push(self, job_or_jobtype: Job | str, /, *args: Any, **options: Any) -> str:
        """Enqueue a job; return its jid.

        ``push(job)`` sends a :class:`werk.Job`; ``push("Type", *args, queue=..., retry=...,
        reserve_for=..., at=..., backtrace=..., custom=..., jid=...)`` builds one. Invalid
        jobs raise :class:`werk.JobValidationError` before anything is sent.

        Example::

            jid = client.push("Resize", 42, queue="images", at=timedelta(minutes=5))
        """
        jid, line = push_request(job_or_jobtype, args, options)
        reply = self._call(line, None, (jid,))
        if reply != "OK":
            expect_ok(reply, "PUSH")
        return jid

    def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """Enqueue many jobs (PUSHB, 1000 per command); return ``{jid: error}`` for rejects.

        Every job is validated before the first is sent. An error reply to a whole chunk is
        reported for each of its jobs in the result. A NetworkError says which jobs were
        pushed (``pushed_jids``) and which may have been (``unknown_jids``).

        Example::

            errors = client.push_bulk(Job("Resize", [n]) for n in range(5000))
            assert errors == {}
        """
        errors: dict[str, str] = {}
        pushed: list[str] = []
        for jids, line in pushb_requests(jobs):
            try:
                reply = self._call(line, None, jids)
                result = pushb_reply(reply)
            except NetworkError as exc:
                exc.pushed_jids = tuple(pushed)
                raise
            except ServerError as exc:
                result = dict.fromkeys(jids, str(exc))
            errors.update(result)
            pushed.extend(j for j in jids if j not in result)
        return errors

    def fetch(self, *queues: str) -> Job | None:
        """Reserve the next job from the first non-empty queue (in the order given).

        Waits up to ~2 s server-side; returns None when there is nothing. No queue means
        ``"default"``. The job must then be :meth:`ack`\\ ed or :meth:`fail`\\ ed.

        Example::

            job = client.fetch("critical", "default")
        """
        return fetched_job(self._call(fetch_request(queues), self.settings.fetch_timeout))

    def ack(self, jid: str) -> None:
        """Report a fetched job done (unknown jids are accepted silently by the server)."""
        reply = self._call(commands.ack(jid))
        if reply != "OK":
            expect_ok(reply, "ACK")

    def fail(
        self,
        jid: Job | str,
        exc_or_message: BaseException | str,
        *,
        errtype: str | None = None,
        backtrace: Sequence[str] | int | None = None,
    ) -> None:
        """Report a fetched job failed; the server retries or buries it.

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
        expect_ok(self._call(fail_request(jid, exc_or_message, errtype, backtrace)), "FAIL")

    def beat(
        self, current_state: BeatState | None = None, rss_kb: int | None = None
    ) -> BeatState | None:
        """Heartbeat for this worker (needs ``wid``); returns None, ``"quiet"`` or ``"terminate"``.

        Example::

            if client.beat(rss_kb=51200) == "terminate":
                shutdown()
        """
        line = beat_request(self.settings.require_wid(), current_state, rss_kb)
        return beat_state(self._call(line))

    # -- admin ----------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Server statistics (INFO) as a dict: ``faktory``, ``server``, ``now``..."""
        return dict_reply(self._call(commands.info()), "INFO")

    def flush(self) -> None:
        """Erase every queue, set and counter (FLUSH). For tests and development."""
        expect_ok(self._call(commands.flush()), "FLUSH")

    def queue_pause(self, *queues: str) -> None:
        """Stop FETCH from taking jobs from these queues (``"*"``: all known queues)."""
        expect_ok(self._call(commands.queue("PAUSE", queues)), "QUEUE PAUSE")

    def queue_resume(self, *queues: str) -> None:
        """Undo :meth:`queue_pause` (``"*"``: all known queues)."""
        expect_ok(self._call(commands.queue("RESUME", queues)), "QUEUE RESUME")

    def queue_remove(self, *queues: str) -> None:
        """Delete these queues **and all their jobs** (``"*"``: every queue)."""
        expect_ok(self._call(commands.queue("REMOVE", queues)), "QUEUE REMOVE")

    def queue_latency(self, *queues: str) -> dict[str, float]:
        """Seconds since the oldest job of each queue was enqueued (0 when empty)."""
        return latency_reply(self._call(latency_request(queues)))

    def mutate(self, mutation: Mutation) -> None:
        """Kill, discard, requeue or clear jobs in the retries, scheduled or dead set.

        Example::

            client.mutate(Mutation.requeue(Target.DEAD).jobtype("Resize"))
        """
        expect_ok(self._call(mutate_request(mutation)), "MUTATE")

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
        line = batch_new_request(
            success=success, complete=complete, description=description, parent_bid=parent_bid
        )
        return string_reply(self._call(line), "BATCH NEW")

    def batch_open(self, bid: str) -> str:
        """Enterprise only: reopen a batch to add jobs; returns the bid."""
        return string_reply(self._call(commands.batch_open(bid)), "BATCH OPEN")

    def batch_commit(self, bid: str) -> None:
        """Enterprise only: close a batch (its callbacks fire once its jobs finish)."""
        expect_ok(self._call(commands.batch_commit(bid)), "BATCH COMMIT")

    def batch_status(self, bid: str) -> dict[str, Any]:
        """Enterprise only: a batch's counters (total, pending, failed, ...)."""
        return dict_reply(self._call(commands.batch_status(bid)), "BATCH STATUS")

    def track_get(self, jid: str) -> dict[str, Any]:
        """Enterprise only: a tracked job's progress (state, percent, desc, updated_at)."""
        return dict_reply(self._call(commands.track_get(jid)), "TRACK GET")

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
        line = track_set_request(
            jid, percent=percent, description=description, reserve_until=reserve_until
        )
        expect_ok(self._call(line), "TRACK SET")

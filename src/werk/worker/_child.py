"""The process executor's child: runs the jobs its parent hands over a pipe, one at a time.

A child imports the app once (by reference, ``module:attribute``), says it is ready, then
answers each job frame with its outcome. Each job runs as a :class:`~werk.worker._run.JobRun`
without middleware (the parent calls the middleware around each job) and reports what the
run says a FAIL carries. A child never outlives its parent: a lifeline pipe tells it when the
parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import pickle
import signal
import struct
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from typing import TYPE_CHECKING, Any

from werk._errors import ConfigurationError
from werk._job import Job
from werk.client import Client
from werk.worker._clients import ThreadClients
from werk.worker._context import JobContext
from werk.worker._middleware import Hooks
from werk.worker._run import JobRun

if TYPE_CHECKING:
    from werk.worker._app import App

__all__ = ["OK", "PICKLE", "READY", "Channel", "child_main", "load_app"]


def load_app(ref: str) -> App:
    """Import the app named ``"module:attribute"`` (the attribute defaults to ``app``); in a
    Django project (``DJANGO_SETTINGS_MODULE``), as ``werk worker`` does (see werk.django)."""
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        from werk.django import load_project_app

        return load_project_app(lambda: _import_app(ref))
    return _import_app(ref)


def _import_app(ref: str) -> App:
    modname, _, attr = ref.partition(":")
    module = importlib.import_module(modname)
    app: App = getattr(module, attr or "app")
    return app


# The pipe protocol. Each message is one frame in multiprocessing's own framing (a 4-byte
# big-endian length, then the bytes), sent in one write() and, when small, read in one
# read(): Connection.recv_bytes needs two (header, then body) - each a system call and, in
# the parent, a release and re-acquisition of the GIL among the slot threads.
#
#   child -> parent, once:  b"ready" (the app is imported)
#   parent -> child, a job: one byte, the backtrace limit (0-50), then pickle((payload,
#                           timeout, deadline)); the deadline is on time.monotonic(), a
#                           clock the processes of one machine share
#   child -> parent, reply: b"" when the handler returned, else pickle((errtype, message,
#                           backtrace lines))
#
# The payload is the dict the client already parsed. Pickling it (about 0.5 us, loads 0.9 us
# for a typical job) is cheaper than shipping JSON text, which the child would have to parse
# again (about 3 us).
_HEADER = struct.Struct("!i")
READY = b"ready"
OK = b""
_EMPTY = _HEADER.pack(0)  # the frame of OK
PICKLE = pickle.HIGHEST_PROTOCOL


class Channel:
    """Sends and reads whole frames, in one system call each when small: reads on ``conn``,
    writes on ``out`` (default: ``conn`` too, a duplex connection).

    The executor gives each direction a plain pipe of its own: waking the other side is
    cheaper through a pipe than through a duplex (Unix socket) connection, which also wakes
    the writer each time the reader drains it. The protocol is strictly one request, one
    reply, so nothing is ever left over after a frame; the loop still handles frames split
    across reads (large payloads).
    """

    def __init__(self, conn: Pipe, out: Pipe | None = None) -> None:
        self._conn = conn
        self._out = conn if out is None else out
        posix = os.name == "posix"
        self._fd = conn.fileno() if posix else -1
        self._out_fd = self._out.fileno() if posix else -1

    def send(self, data: bytes) -> None:
        """Send one frame (OSError, e.g. BrokenPipeError, when the other end is gone)."""
        if self._out_fd < 0:
            self._out.send_bytes(data)
            return
        frame = _HEADER.pack(len(data)) + data if data else _EMPTY
        sent = os.write(self._out_fd, frame)
        if sent < len(frame):  # (a frame larger than the pipe's buffer)
            rest = memoryview(frame)[sent:]
            while rest:
                rest = rest[os.write(self._out_fd, rest) :]

    def recv(self) -> bytes:
        """The next frame's bytes; EOFError when the other end is gone."""
        if self._fd < 0:
            return self._conn.recv_bytes()
        read = os.read
        data = read(self._fd, 65536)
        if data == _EMPTY:  # the usual reply: the handler returned
            return OK
        while len(data) < 4:
            if not data or not (more := read(self._fd, 65536)):
                raise EOFError
            data += more
        (size,) = _HEADER.unpack_from(data)
        if size < 0:  # multiprocessing's marker for frames over 2 GiB; never sent here
            raise OSError("frame too large for the werk child protocol")
        end = 4 + size
        if len(data) == end:  # the usual case: one read, one frame
            return data[4:]
        parts = [data[4:]]
        missing = end - len(data)
        while missing > 0:
            chunk = read(self._fd, min(missing, 1 << 20))
            if not chunk:
                raise EOFError
            parts.append(chunk)
            missing -= len(chunk)
        if missing < 0:
            raise OSError("unexpected bytes after a frame on the werk child pipe")
        return b"".join(parts)


def _die_with_parent(lifeline: Pipe) -> None:
    # The parent holds the other end and never writes to it: EOF means the parent is gone
    # (kill -9, the OOM killer). Nobody can report this child's job any more, and the server
    # hands it out again when its reservation expires: running on would only run it twice.
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()
    os._exit(1)


def job_clients(client_args: dict[str, Any] | None) -> ThreadClients | None:
    """The child's connection for its jobs' batches and tracking, made on first use from
    the worker's ``client_args`` (a producer connection: the child has no wid of its own).

    An :class:`ssl.SSLContext` cannot be sent to another process: when the worker was given
    one (``custom_tls``), the child refuses with a ConfigurationError rather than connect
    with other TLS settings.
    """
    if client_args is None:
        return None
    args = dict(client_args)
    if args.pop("custom_tls", False):

        def refuse() -> Client:
            raise ConfigurationError(
                "the process executor cannot give its child processes the worker's "
                "ssl_context: jobs there cannot open batches or report progress over TLS "
                "with a custom context (use the thread or asyncio executor, or a tcp+tls:// "
                "URL with the default certificate checks)"
            )

        return ThreadClients(refuse)
    return ThreadClients(lambda: Client(**args))


def child_main(
    ref: str,
    conn: Pipe,
    wid: str,
    lifeline: Pipe,
    client_args: dict[str, Any] | None = None,
    out: Pipe | None = None,
    environ: dict[str, str] | None = None,
) -> None:
    """The child process: run the jobs that arrive on ``conn`` until it closes, and reply
    on ``out`` (default: ``conn``).

    ``client_args`` (the worker's URL, password, timeouts) let its jobs reach the server
    (:meth:`werk.JobContext.client`). ``environ`` replaces the child's environment first:
    a child forked by a fork server would otherwise have the server's, from when it
    started, not the one the worker has now (as a spawned child does)."""
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    # The parent handles every signal; a Ctrl-C in the terminal reaches the whole process
    # group, and TSTP would freeze the child. The parent ends children with SIGTERM/SIGKILL.
    for name in ("SIGINT", "SIGTSTP", "SIGTTIN"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    if hasattr(os, "SCHED_BATCH"):
        # Linux: a child woken by its next job does not preempt the parent's I/O thread on
        # the spot (a batch task never does), so the thread hands out the rest of what its
        # selector reported first: a context switch fewer per job, on both sides. Only the
        # wake-up changes; the child's share of the CPU stays what it was.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    threading.Thread(
        target=_die_with_parent, args=(lifeline,), name="werk-lifeline", daemon=True
    ).start()
    jobs = load_app(ref).jobs  # resolved once; each job is one dict lookup
    no_hooks = Hooks()  # the parent calls the middleware around each job
    channel = Channel(conn, out)
    clients = job_clients(client_args)
    channel.send(READY)  # the parent waits for this: no job waits on a cold child
    try:
        _serve(channel, jobs, no_hooks, wid, None if clients is None else clients.get)
    finally:
        if clients is not None:
            clients.close()


def _serve(
    channel: Channel,
    jobs: dict[str, Any],
    no_hooks: Hooks,
    wid: str,
    connect: Callable[[], Client] | None,
) -> None:
    # One job at a time, until the parent closes the pipe.
    send = channel.send
    loop: asyncio.AbstractEventLoop | None = None
    loads = pickle.loads
    from_dict = Job.from_dict
    while True:
        try:
            frame = channel.recv()
        except (EOFError, OSError):
            return
        payload, timeout, deadline = loads(memoryview(frame)[1:])
        job = from_dict(payload)
        ctx = JobContext(job, wid, None, timeout, deadline, connect)
        run = JobRun(job, jobs, no_hooks, ctx)
        fn = run.fn
        if fn is not None:
            with run:
                if fn.is_async:
                    if loop is None:
                        loop = asyncio.new_event_loop()
                    loop.run_until_complete(fn.func(*job.args))
                else:
                    fn.func(*job.args)
        send(OK if run.error is None else pickle.dumps(run.failure(frame[0]), PICKLE))

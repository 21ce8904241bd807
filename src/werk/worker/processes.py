"""The process executor: each fetch slot owns one child process, replaced if it dies.

A slot thread fetches as in the thread executor and hands the job to its own child over a
pipe: one write and one read each way per job, no pool scheduler or extra thread in between.
If the child dies while running the job (``os._exit``, a segfault, SIGKILL, the OOM killer),
the pipe reports EOF: that job is FAILed with errtype ``ChildProcessDied``, a fresh child is
started for the next job, and the other slots never notice. A child found dead before it got
its job is replaced and the job handed to the new one. A plain ``ProcessPoolExecutor`` would
instead break for good. The other way round, a child dies with the worker: if the worker is
killed (``kill -9``), a lifeline pipe tells its children, which exit at once rather than run
on a job that nobody can report and the server will hand out again.

Children are started with the ``spawn`` method (safe with the parent's threads) and import
the app by reference (``module:attribute``), found among the loaded modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import struct
import sys
import threading
import time
from multiprocessing.connection import Connection as Pipe
from typing import TYPE_CHECKING, Any

from werk._errors import ConfigurationError
from werk._job import Job
from werk.worker.context import JobContext, reset_current, set_current
from werk.worker.runner import InFlight, RemoteJobError, _limit, describe, format_backtrace
from werk.worker.threads import ThreadSlots

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

    from werk.worker.app import App, JobFunction
    from werk.worker.worker import Worker

__all__ = ["ProcessSlots", "app_reference", "load_app"]

log = logging.getLogger("werk.worker.process")


def app_reference(app: App) -> str:
    """``"module:attribute"`` under which ``app`` can be imported (for child processes).

    Example::

        app_reference(myproject.jobs.app)   # 'myproject.jobs:app'
    """
    if app.import_path:
        return app.import_path
    found: list[str] = []
    for modname, module in list(sys.modules.items()):
        try:
            attrs = vars(module)
        except TypeError:
            continue
        for name, value in list(attrs.items()):
            if value is app:
                found.append(f"{modname}:{name}")
    for ref in found:
        if not ref.startswith(("__main__:", "__mp_main__:")):
            return ref
    if found:
        return found[0]
    raise ConfigurationError(
        "the process executor needs an app defined at module level (it imports the app in "
        "each child process), or set app.import_path = 'package.module:app'"
    )


def load_app(ref: str) -> App:
    """Import the app named by :func:`app_reference`."""
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
#   parent -> child, a job: one byte, the backtrace limit (0-50), then pickle(payload)
#   child -> parent, reply: b"" when the handler returned, else pickle((errtype, message,
#                           backtrace lines))
#
# The payload is the dict the client already parsed. Pickling it (about 0.5 us, loads 0.9 us
# for a typical job) is cheaper than shipping JSON text, which the child would have to parse
# again (about 3 us).
_HEADER = struct.Struct("!i")
_READY = b"ready"
_OK = b""
_PICKLE = pickle.HIGHEST_PROTOCOL


class _Channel:
    """Sends and reads whole frames on a connection, in one system call each when small.

    The protocol is strictly one request, one reply, so nothing is ever left over after a
    frame; the loop still handles frames split across reads (large payloads).
    """

    def __init__(self, conn: Pipe) -> None:
        self._conn = conn
        self._fd = conn.fileno() if os.name == "posix" else -1

    def send(self, data: bytes) -> None:
        """Send one frame (OSError, e.g. BrokenPipeError, when the other end is gone)."""
        if self._fd < 0:
            self._conn.send_bytes(data)
            return
        frame = memoryview(_HEADER.pack(len(data)) + data)
        while frame:
            frame = frame[os.write(self._fd, frame) :]

    def recv(self) -> bytes:
        """The next frame's bytes; EOFError when the other end is gone."""
        if self._fd < 0:
            return self._conn.recv_bytes()
        read = os.read
        data = read(self._fd, 65536)
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


def _child_main(ref: str, conn: Pipe, wid: str, lifeline: Pipe) -> None:
    # The parent handles every signal; a Ctrl-C in the terminal reaches the whole process
    # group, and TSTP would freeze the child. The parent ends children with SIGTERM/SIGKILL.
    for name in ("SIGINT", "SIGTSTP", "SIGTTIN"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    threading.Thread(
        target=_die_with_parent, args=(lifeline,), name="werk-lifeline", daemon=True
    ).start()
    jobs = load_app(ref).jobs  # resolved once; each job is one dict lookup
    channel = _Channel(conn)
    send = channel.send
    loads = pickle.loads
    from_dict = Job.from_dict
    send(_READY)  # the parent waits for this: no job waits on a cold child
    loop: asyncio.AbstractEventLoop | None = None
    while True:
        try:
            frame = channel.recv()
        except (EOFError, OSError):
            return
        job = from_dict(loads(memoryview(frame)[1:]))
        fn = jobs.get(job.jobtype)
        token = set_current(JobContext(job, wid))
        reply = _OK
        try:
            if fn is None:
                raise LookupError(f"no handler for {job.jobtype!r} in the child process")
            if fn.is_async:
                if loop is None:
                    loop = asyncio.new_event_loop()
                loop.run_until_complete(fn.func(*job.args))
            else:
                fn.func(*job.args)
        except BaseException as exc:
            errtype, message = describe(exc)
            reply = pickle.dumps((errtype, message, format_backtrace(exc, frame[0])), _PICKLE)
        finally:
            reset_current(token)
        send(reply)


class _Child:
    def __init__(self, ctx: Any, ref: str, wid: str, slot: int) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Pipe = parent
        self.channel = _Channel(parent)
        # The child's lifeline: this process keeps the writing end open until the child is
        # stopped, so the child sees EOF on it when this process dies.
        lifeline, self._lifeline = ctx.Pipe(duplex=False)
        self.proc: SpawnProcess = ctx.Process(
            target=_child_main,
            args=(ref, child, wid, lifeline),
            name=f"werk-child-{slot}",
            daemon=True,
        )
        self.proc.start()
        child.close()  # so that the child's death shows as EOF here
        lifeline.close()
        self.busy = False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the child imported the app; raise if it died or hung trying."""
        try:
            if self.conn.poll(timeout) and self.channel.recv() == _READY:
                return
        except (EOFError, OSError):
            pass
        self.kill()
        raise ConfigurationError(
            f"child process {self.proc.pid} could not start (exit code {self.proc.exitcode}); "
            "is the app importable in a fresh interpreter?"
        )

    def send(self, frame: bytes) -> None:
        """Hand over one job (OSError if the child is gone: then it never got the job)."""
        self.channel.send(frame)

    def outcome(self) -> tuple[str, str, list[str]] | None:
        """Wait for the job's outcome: None, or (errtype, message, backtrace)."""
        reply = self.channel.recv()
        if not reply:
            return None
        result: tuple[str, str, list[str]] = pickle.loads(reply)
        return result

    def describe_death(self, idle: bool = False) -> str:
        self.proc.join(1.0)
        code = self.proc.exitcode
        if code is None:
            how = "stopped answering"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        return f"child process {self.proc.pid} {how} " + (
            "while idle" if idle else "while running the job"
        )

    def kill(self) -> None:
        # Only the process: the slot thread blocked on the pipe then sees EOF and closes it.
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(1.0)
            if self.proc.is_alive():
                self.proc.kill()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()  # an idle child reads EOF and exits
        with contextlib.suppress(OSError):
            self._lifeline.close()
        self.proc.join(1.0)
        self.kill()


class ProcessSlots(ThreadSlots):
    """Thread slots whose handlers run in per-slot child processes."""

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker, self._invoke_child)
        self._ref = app_reference(worker.app)
        self._ctx = multiprocessing.get_context("spawn")
        self._children: list[_Child | None] = [None] * worker.concurrency
        self._children_lock = threading.Lock()

    def start(self) -> None:
        """Start every child (in parallel), then the slots."""
        children = [
            _Child(self._ctx, self._ref, self.worker.wid, i) for i in range(len(self._children))
        ]
        for i, child in enumerate(children):  # they start in parallel
            child.wait_ready()
            self._children[i] = child
        log.info("started %d child processes (%s)", self.worker.concurrency, self._ref)
        super().start()

    def _spawn(self, slot: int) -> _Child:
        child = _Child(self._ctx, self._ref, self.worker.wid, slot)
        child.wait_ready()
        return child

    def _invoke_child(
        self, slot: int, flight: InFlight, fn: JobFunction[Any, Any]
    ) -> BaseException | None:
        # No liveness check per job (waitpid is a system call, and the answer can be stale
        # a moment later anyway): a child that died is found out by the pipe itself.
        child = self._children[slot]
        if child is None:
            if self.worker.hard_stop.is_set():
                return RemoteJobError("Shutdown", "worker is stopping")
            child = self._children[slot] = self._spawn(slot)
        limit = _limit(flight.job, self.worker.app.default_backtrace)
        frame = bytes((limit,)) + pickle.dumps(flight.payload, _PICKLE)
        # Busy from before the job is sent: the shutdown deadline ends busy children.
        child.busy = True
        try:
            child.send(frame)
        except OSError as exc:
            # It died while idle, so the job never reached it: a new child gets it.
            child.busy = False
            log.warning("%s; starting a new one", child.describe_death(idle=True))
            child.stop()
            self._children[slot] = None
            if self.worker.hard_stop.is_set():
                return RemoteJobError("Shutdown", f"worker is stopping ({exc})")
            child = self._children[slot] = self._spawn(slot)
            child.busy = True
            child.send(frame)  # a brand-new child's pipe failing is a real error
        try:
            result = child.outcome()
        except (EOFError, OSError) as exc:
            message = child.describe_death()
            if not self.worker.hard_stop.is_set():
                log.error(
                    "%s (jid=%s jobtype=%s); starting a new one",
                    message,
                    flight.job.jid,
                    flight.job.jobtype,
                )
            child.stop()
            self._children[slot] = None
            return RemoteJobError("ChildProcessDied", message or str(exc))
        finally:
            child.busy = False
        if result is None:
            return None
        return RemoteJobError(*result)

    def stop_jobs(self) -> None:
        """At the deadline: end the children still running (abandoned) jobs, all at once.

        SIGTERM, then SIGKILL for those still alive a second later (a handler may catch
        TERM): one second in all, however many children there are.
        """
        busy = [c for c in list(self._children) if c is not None and c.busy]
        for child in busy:
            if child.proc.is_alive():
                child.proc.terminate()
        deadline = time.monotonic() + 1.0
        for child in busy:
            child.proc.join(max(0.0, deadline - time.monotonic()))
        for child in busy:
            if child.proc.is_alive():
                child.proc.kill()

    def close(self) -> None:
        """End every child and the slots' connections."""
        super().close()
        for i, child in enumerate(self._children):
            if child is not None:
                child.stop()
                self._children[i] = None

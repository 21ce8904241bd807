"""The process executor: slot threads fetch, child processes run the handlers.

A slot thread fetches as in the thread executor and hands the job to an idle child over a
pipe: one write and one read each way per job, no pool scheduler or extra thread in between.
There are as many children as slots, so a slot always finds one idle; it takes the one that
finished a job last (a stack), whose memory is still in the CPU's caches, while the children
nobody needs stay asleep. If the child dies while running the job (``os._exit``, a segfault,
SIGKILL, the OOM killer), the pipe reports EOF: that job is FAILed with errtype
``ChildProcessDied``, and a fresh child takes the dead one's place when a slot next needs
it; the other slots never notice. A child found dead before it got its job is replaced and
the job handed to the new one. A plain ``ProcessPoolExecutor`` would instead break for
good. The other way round, a child dies with the worker: if the worker is killed (``kill
-9``), a lifeline pipe tells its children, which exit at once rather than run on a job that
nobody can report and the server will hand out again.

Children are started with the ``spawn`` method (safe with the parent's threads) and import
the app by reference (``module:attribute``), found among the loaded modules. What runs in
the child, and the pipe protocol, are in :mod:`werk.worker._child`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import signal
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection as Pipe
from typing import TYPE_CHECKING, Any

from werk._errors import ConfigurationError
from werk.worker._child import PICKLE, READY, Channel, child_main
from werk.worker._host import SlotHost
from werk.worker._run import JobRun, RemoteJobError, backtrace_limit
from werk.worker._threads import ThreadSlots

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

    from werk.worker._app import App

__all__ = ["ProcessSlots", "app_reference"]

log = logging.getLogger("werk.worker.process")


def app_reference(app: App) -> str:
    """``"module:attribute"`` under which ``app`` can be imported (for child processes):
    ``app.import_path``, else where it is found among the loaded modules."""
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


class _Child:
    def __init__(
        self,
        ctx: Any,
        ref: str,
        wid: str,
        slot: int,
        client_args: dict[str, Any] | None = None,
    ) -> None:
        # A pipe each way (cheaper wake-ups than one duplex Unix socket, see Channel).
        jobs_in, jobs_out = ctx.Pipe(duplex=False)
        replies_in, replies_out = ctx.Pipe(duplex=False)
        self.conn: Pipe = replies_in
        self._jobs: Pipe = jobs_out
        self.channel = Channel(replies_in, jobs_out)
        # The child's lifeline: this process keeps the writing end open until the child is
        # stopped, so the child sees EOF on it when this process dies.
        lifeline, self._lifeline = ctx.Pipe(duplex=False)
        self.proc: SpawnProcess = ctx.Process(
            target=child_main,
            args=(ref, jobs_in, wid, lifeline, client_args, replies_out),
            name=f"werk-child-{slot}",
            daemon=True,
        )
        self.proc.start()
        # So that the child's death shows here: EOF on its replies, EPIPE on a job sent.
        jobs_in.close()
        replies_out.close()
        lifeline.close()
        self.index = slot  # its place among the executor's children
        self.run: JobRun | None = None  # the run it was handed (until its reply)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the child imported the app; raise if it died or hung trying."""
        try:
            if self.conn.poll(timeout) and self.channel.recv() == READY:
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
            self._jobs.close()  # an idle child reads EOF and exits
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(OSError):
            self._lifeline.close()
        self.proc.join(1.0)
        self.kill()


class ProcessSlots(ThreadSlots):
    """Thread slots whose handlers run in child processes, as many as slots.

    ``ref`` is where the children import the app from (see :func:`app_reference`),
    ``wid`` goes into each job's context there, ``default_backtrace`` is the app's, and
    ``client_args`` are how a child connects for its jobs' batches and tracking (see
    :func:`~werk.worker._child.child_main`).
    """

    def __init__(
        self,
        host: SlotHost,
        ref: str,
        wid: str,
        default_backtrace: int,
        client_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(host)
        self._ref = ref
        self._wid = wid
        self._client_args = client_args
        self._default_backtrace = default_backtrace
        self._ctx = multiprocessing.get_context("spawn")
        # Every child, in a fixed place each (None: died, replaced when needed).
        self._children: list[_Child | None] = [None] * host.concurrency
        self._idle: list[_Child] = []  # a stack: the last one to finish a job on top
        self._places = threading.Lock()  # for a new child taking a dead one's place

    def start(self) -> None:
        """Start every child (in parallel), then the slots."""
        children = [
            _Child(self._ctx, self._ref, self._wid, i, self._client_args)
            for i in range(len(self._children))
        ]
        for i, child in enumerate(children):  # they start in parallel
            child.wait_ready()
            self._children[i] = child
        # Child 0 on top of the stack.
        self._idle.extend(reversed(children))
        log.info("started %d child processes (%s)", len(children), self._ref)
        super().start()

    def _spawn(self, index: int | None = None) -> _Child:
        # A new child in place ``index``, else in the first place left by a dead one.
        with self._places:
            if index is None:
                index = self._children.index(None)
            child = _Child(self._ctx, self._ref, self._wid, index, self._client_args)
            self._children[index] = child
        try:
            child.wait_ready()
        except BaseException:
            self._children[index] = None
            raise
        return child

    def _take(self) -> _Child:
        # The child that finished a job last: its memory is still in the CPU's caches, and
        # the children nobody needs sleep on. A slot holds at most one child and there are
        # as many children as slots, so one is idle unless one died (then it is replaced).
        try:
            return self._idle.pop()
        except IndexError:
            pass
        if self.host.hard_stop.is_set():
            raise RemoteJobError("Shutdown", "worker is stopping")
        return self._spawn()

    def _replace(self, child: _Child) -> _Child | None:
        # A child found dead while idle: a new one takes its place (None at the hard stop).
        child.stop()
        if self.host.hard_stop.is_set():
            self._children[child.index] = None
            return None
        return self._spawn(child.index)

    def _discard(self, child: _Child) -> None:
        # A child that cannot be trusted with another job: its place waits for a new one.
        child.run = None
        child.stop()
        self._children[child.index] = None

    def invoke(self, index: int, run: JobRun) -> None:
        """Hand the run's job to an idle child and wait for its outcome."""
        with run:
            outcome = self._in_child(run)
            if outcome is not None:
                raise RemoteJobError(*outcome)

    def _in_child(self, run: JobRun) -> tuple[str, str, list[str]] | None:
        # No liveness check per job (waitpid is a system call, and the answer can be stale
        # a moment later anyway): a child that died is found out by the pipe itself.
        child = self._take()
        limit = backtrace_limit(run.job, self._default_backtrace)
        frame = bytes((limit,)) + pickle.dumps((run.payload, run.ctx.timeout, run.deadline), PICKLE)
        # Its run from before the job is sent: the shutdown deadline ends busy children.
        child.run = run
        try:
            child.send(frame)
        except OSError as exc:
            # It died while idle, so the job never reached it: a new child gets it.
            child.run = None
            log.warning("%s; starting a new one", child.describe_death(idle=True))
            replacement = self._replace(child)
            if replacement is None:
                raise RemoteJobError("Shutdown", f"worker is stopping ({exc})") from None
            child = replacement
            child.run = run
            try:
                child.send(frame)  # a brand-new child's pipe failing is a real error
            except BaseException:
                self._discard(child)
                raise
        try:
            outcome = child.outcome()
        except (EOFError, OSError) as exc:
            message = child.describe_death()
            if run.timed_out:
                log.info("killed child process %d: jid=%s timed out", child.proc.pid, run.job.jid)
            elif not self.host.hard_stop.is_set():
                log.error(
                    "%s (jid=%s jobtype=%s); a new one takes its place",
                    message,
                    run.job.jid,
                    run.job.jobtype,
                )
            self._discard(child)
            raise RemoteJobError("ChildProcessDied", message or str(exc)) from None
        except BaseException:  # (a reply that is not one) nobody knows what the child is at
            self._discard(child)
            raise
        child.run = None
        self._idle.append(child)
        return outcome

    def stop(self, runs: Sequence[JobRun]) -> None:
        """End the children running these runs' jobs, all at once (a new child takes the
        slot's next job).

        SIGTERM, then SIGKILL for those still alive a second later (a handler may catch
        TERM): one second in all, however many children there are.
        """
        doomed = set(runs)
        busy = [c for c in list(self._children) if c is not None and c.run in doomed]
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

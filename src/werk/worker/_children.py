"""The process executor's children as its parent sees them: start, hand over, end.

A :class:`ChildProcess` is started with the ``forkserver`` method (``spawn`` where there is
none; both safe with the parent's threads) and imports the app by reference
(``module:attribute``, see :func:`app_reference`). It gets its jobs on one pipe and answers
on another (what runs in the child, and the protocol, are in :mod:`werk.worker._child`).
The other way round, a child dies with the worker: if the worker is killed (``kill -9``), a
lifeline pipe tells its children, which exit at once rather than run on a job that nobody
can report and the server will hand out again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import sys
from multiprocessing.connection import Connection as Pipe
from typing import TYPE_CHECKING, Any

from werk._errors import ConfigurationError
from werk.worker._child import READY, Channel, child_main
from werk.worker._run import JobRun

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from werk.worker._app import App

__all__ = ["ChildProcess", "app_reference"]

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


class ChildProcess:
    """One child process and its pipes; ``index`` is its place among the executor's
    children, ``run`` the job it was handed (until its reply), ``dead`` set when its pipe
    said so while it was idle."""

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
        self.proc: BaseProcess = ctx.Process(
            target=child_main,
            args=(ref, jobs_in, wid, lifeline, client_args, replies_out),
            kwargs={"environ": dict(os.environ)},
            name=f"werk-child-{slot}",
            daemon=True,
        )
        self.proc.start()
        # So that the child's death shows here: EOF on its replies, EPIPE on a job sent.
        jobs_in.close()
        replies_out.close()
        lifeline.close()
        self.index = slot  # its place among the executor's children
        self.run: JobRun | None = None
        self.wire: Any = None  # whose run it is (the I/O thread's business)
        self.dead = False

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

"""The process executor: one I/O thread drives every slot, child processes run the handlers.

Each slot is the same :class:`~werk.worker._slot.Slot` the other executors run, but no slot
has a thread of its own: one thread multiplexes every slot's server connection and every
child's pipe with a selector (a :class:`~werk.worker._wire.Wire` per slot), writes what a
slot wants sent, feeds it the replies, and hands each job it fetched to an idle child. With
a thread per slot, every job woke two threads that then fought over the GIL (most of the
worker's CPU was that hand-off); here the thread only ever waits in the selector.
Connecting, greeting and TLS connections go through the blocking client on helper threads.

There are as many children as slots, so a slot always finds one idle; it takes the one that
finished a job last (a stack), whose memory is still in the CPU's caches, while the children
nobody needs stay asleep. If the child dies while running the job (``os._exit``, a segfault,
SIGKILL, the OOM killer, or the executor killing it at its job's timeout), the pipe reports
EOF: that job is FAILed with errtype ``ChildProcessDied``, and a fresh child takes the dead
one's place when a slot next needs it (started in the background; the slot waits for it).
A child found dead before it got its job is replaced and the job handed to the new one. A
plain ``ProcessPoolExecutor`` would instead break for good.

The middleware runs here, around each job, in a :class:`contextvars.Context` of the job's
own (``werk.current_job()`` included), since the jobs of every slot take turns on this
thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import multiprocessing
import pickle
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from werk._errors import ConfigurationError
from werk.worker._child import PICKLE, READY
from werk.worker._children import ChildProcess, app_reference
from werk.worker._host import SlotHost
from werk.worker._run import JobRun, RemoteJobError, backtrace_limit
from werk.worker._slot import Pause, Send, Slot
from werk.worker._threadpool import DaemonThreadPool
from werk.worker._wire import Poller, Wire, blocking_send

__all__ = ["ProcessSlots", "app_reference"]

log = logging.getLogger("werk.worker.process")

_monotonic = time.monotonic
_CHECK_EVERY = 0.02  # seconds between looks at pauses, late replies and the hard stop
_START_TIMEOUT = 60.0  # seconds a new child has to import the app
_dumps = pickle.dumps


def _start_method() -> Any:
    # forkserver where there is one (POSIX): a child is forked from a server process that
    # has imported werk's side of the child once, so twenty children start in a fraction of
    # a second instead of each importing werk afresh (half a second of CPU apiece, seconds
    # of waiting for the first job on two cores). Each child still imports the app itself,
    # with the parent's current sys.path and working directory (as spawn does), so a
    # changed app is never served from a stale copy. Elsewhere: spawn.
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["werk.worker._child"])
    return ctx


class ProcessSlots:
    """Slots driven by one I/O thread whose handlers run in child processes, as many as
    slots.

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
        self.host = host
        self._ref = ref
        self._wid = wid
        self._client_args = client_args
        self._default_backtrace = default_backtrace
        self._ctx = _start_method()
        # Every child, in a fixed place each (None: died, replaced when needed).
        self._children: list[ChildProcess | None] = [None] * host.concurrency
        self._idle: list[ChildProcess] = []  # a stack: the last one to finish a job on top
        self._starting: dict[ChildProcess, float] = {}  # not ready yet: until when it may take
        self._waiting: deque[Wire] = deque()  # slots whose job waits for a child
        self.wires: list[Wire] = []
        self._poller = Poller()
        # A socket pair, not a pipe: Windows can wait for sockets, not for pipes.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._open = True
        self._posted: deque[tuple[Wire, Any]] = deque()  # helper threads' outcomes
        self._helpers = DaemonThreadPool(host.concurrency, "werk-connect")
        self._live = 0  # slots not yet stopped
        self._closing = False
        self._released = threading.Event()
        self._release_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- the executor's face (called from the worker's threads) -----------------------------

    def start(self) -> None:
        """Start every child (in parallel), then the I/O thread."""
        children = [self._new_child(i) for i in range(len(self._children))]
        self._children[:] = children  # (so that close() ends them all, if one fails)
        for child in children:  # they start in parallel
            child.wait_ready()
            self._watch_child(child)
        self._idle.extend(reversed(children))  # child 0 on top of the stack
        log.info("started %d child processes (%s)", len(children), self._ref)
        host = self.host
        self.wires = [Wire(i, Slot(host), host.new_client()) for i in range(host.concurrency)]
        self._poller.register(self._wake_r, (self._woken, None))
        self._live = len(self.wires)
        self._thread = threading.Thread(target=self._loop, name="werk-process-io", daemon=True)
        self._thread.start()

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

    def io_busy(self) -> bool:
        """True while some slot waits for the server's reply."""
        return any(wire.slot.in_io for wire in self.wires)

    def close(self) -> None:
        """After the shutdown: say END on the connections of slots not waiting for a reply
        (the others do once it comes), and end every child."""
        self._closing = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._wake()
            if self._released.wait(30.0):
                return
        self._release()
        if thread is None or not thread.is_alive():
            self._close_selector()

    # -- the I/O thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        host = self.host
        try:
            for wire in self.wires:
                self._advance(wire, wire.slot.next())
            select = self._poller.select
            due = 0.0
            while self._live:
                for handle, arg in select(_CHECK_EVERY):
                    handle(arg)
                now = _monotonic()
                if now >= due:
                    due = now + _CHECK_EVERY
                    self._check(now)
        except BaseException as exc:
            log.critical("the process executor's I/O thread failed: %r", exc, exc_info=exc)
            host.fatal(exc)
            raise
        finally:
            if self._closing:
                self._release()
                self._close_selector()

    def _check(self, now: float) -> None:
        # Pauses over, replies overdue, children slow to start, the hard stop, the close.
        hard = self.host.hard_stop.is_set()
        for wire in self.wires:
            if wire.done:
                continue
            if wire.paused is not None and (hard or now >= wire.paused):
                wire.paused = None
                self._advance(wire, wire.slot.next())
            elif wire.want and now >= wire.deadline:
                self._advance(wire, wire.slot.failed(wire.late()))
        for child, until in list(self._starting.items()):
            if now >= until:
                self._unready(child)
        if hard:
            while self._waiting:
                stopping = RemoteJobError("Shutdown", "worker is stopping")
                self._ended(self._waiting.popleft(), stopping)
        if self._closing and not self._released.is_set():
            self._release()

    def _advance(self, wire: Wire, action: Any) -> None:
        # Do what the slot says until it waits for something: a reply, a child, a pause.
        while action is not None:
            kind = type(action)
            if kind is Send:
                action = self._send(wire, action)
            elif kind is JobRun:
                self._hand(wire, action)
                return
            elif kind is Pause:
                wire.paused = _monotonic() + action.seconds
                return
            else:
                self._finish(wire)
                return

    def _send(self, wire: Wire, action: Send) -> Any:
        link = wire.link
        if link is None or link is not wire.client._link:  # (else: plain, watched already)
            link = wire.plain()
        if link is None:  # not connected (or TLS): the blocking client, on a helper thread
            wire.unwatch()
            self._helpers.submit(blocking_send, wire, action, self.host.fetched, self._post)
            return None
        if link is not wire.link:
            wire.watch(self._poller, link, (self._on_server, wire))
        failure = wire.send(action, action.blocking and self.host.fetched is not None)
        return None if failure is None else wire.slot.failed(failure)

    def _on_server(self, wire: Wire) -> None:
        outcome = wire.readable()
        if outcome is None:
            return
        if isinstance(outcome, list):
            fetched = self.host.fetched
            if fetched is not None and wire.blocking:
                fetched(_monotonic() - wire.started, outcome[-1] is not None)
            self._advance(wire, wire.slot.replied(outcome))
        elif wire.slot.in_io and not wire.done:
            self._advance(wire, wire.slot.failed(outcome))
        else:  # nothing was awaited: the connection is dropped, the next Send reconnects
            log.debug("slot %d: connection closed while idle: %s", wire.index, outcome)

    def _post(self, wire: Wire, outcome: Any) -> None:
        # (on a helper thread)
        self._posted.append((wire, outcome))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (the loop will look anyway), or closed
            self._wake_w.send(b"\0")

    def _woken(self, _: object) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)
        posted = self._posted
        while posted:
            wire, outcome = posted.popleft()
            if wire.done:
                continue
            if type(outcome) is list:
                self._advance(wire, wire.slot.replied(outcome))
            else:
                self._advance(wire, wire.slot.failed(outcome))
        if self._closing and not self._released.is_set():
            self._release()

    def _finish(self, wire: Wire) -> None:
        # The slot stopped (or the executor closes): END on its connection.
        wire.done = True
        wire.paused = None
        wire.unwatch()
        wire.client.close()
        self._live -= 1
        if self._live == 0:
            self.host.slots_exited()

    # -- jobs and children ------------------------------------------------------------------

    def _hand(self, wire: Wire, run: JobRun) -> None:
        wire.run = run
        hooks = run._hooks
        if hooks.before_process is None and hooks.after_process is None and not hooks.on_failure:
            # No middleware sees the job: no context of its own to make it current in (it
            # would be current only while its hooks run here; the handler runs in a child).
            wire.context = None
        else:
            wire.context = context = contextvars.Context()
            context.run(run.__enter__)
        self._dispatch(wire)

    def _dispatch(self, wire: Wire) -> None:
        run = wire.run
        assert run is not None
        if not self._idle:
            if self.host.hard_stop.is_set():
                self._ended(wire, RemoteJobError("Shutdown", "worker is stopping"))
                return
            self._waiting.append(wire)
            self._grow()
            return
        if run.done:  # its deadline passed while it waited for a child: reported already
            self._ended(wire, RemoteJobError("JobTimeout", "timed out waiting for a child"))
            return
        child = self._idle.pop()
        limit = backtrace_limit(run.job, self._default_backtrace)
        frame = bytes((limit,)) + _dumps((run.payload, run.ctx.timeout, run.deadline), PICKLE)
        # Its run from before the job is sent: the shutdown deadline ends busy children.
        child.run = run
        child.wire = wire
        try:
            if child.dead:
                raise BrokenPipeError("its pipe was closed")
            child.send(frame)
        except OSError as exc:
            # It died while idle, so the job never reached it: a new child gets it.
            child.run = child.wire = None
            log.warning("%s; starting a new one", child.describe_death(idle=True))
            self._discard(child)
            if self.host.hard_stop.is_set():
                self._ended(wire, RemoteJobError("Shutdown", f"worker is stopping ({exc})"))
                return
            self._waiting.appendleft(wire)
            self._grow()

    def _on_child(self, child: ChildProcess) -> None:
        run = child.run
        if run is None:
            if child in self._starting:
                self._ready(child)
            else:  # an idle child's pipe closed: it died; replaced when it is next needed
                self._unwatch_child(child)
                child.dead = True
            return
        wire: Wire = child.wire
        error: BaseException | None = None
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
            error = RemoteJobError("ChildProcessDied", message or str(exc))
        except Exception as exc:  # (a reply that is not one) nobody knows what the child is at
            self._discard(child)
            error = exc
        else:
            child.run = child.wire = None
            self._idle.append(child)
            if outcome is not None:
                error = RemoteJobError(*outcome)
        self._ended(wire, error)
        while self._waiting and self._idle:
            self._dispatch(self._waiting.popleft())

    def _ended(self, wire: Wire, error: BaseException | None) -> None:
        # The job's outcome: the middleware hears of it, then the slot.
        run, context = wire.run, wire.context
        assert run is not None
        wire.run = wire.context = None
        exc_info = (
            (None, None, None) if error is None else (type(error), error, error.__traceback__)
        )
        if context is None:  # (no middleware when it started: see _hand)
            run.__exit__(*exc_info)
        else:
            context.run(run.__exit__, *exc_info)
        if not wire.done:
            self._advance(wire, wire.slot.ran(run))

    def _new_child(self, index: int) -> ChildProcess:
        return ChildProcess(self._ctx, self._ref, self._wid, index, self._client_args)

    def _watch_child(self, child: ChildProcess) -> None:
        self._poller.register(child.conn, (self._on_child, child))

    def _unwatch_child(self, child: ChildProcess) -> None:
        self._poller.unregister(child.conn)

    def _grow(self) -> None:
        # A new child in a dead one's place, if the slots waiting for one outnumber those
        # starting; it says when it is ready (it is not waited for here).
        if len(self._starting) >= len(self._waiting):
            return
        try:
            index = self._children.index(None)
        except ValueError:
            return
        child = self._new_child(index)
        self._children[index] = child
        self._starting[child] = _monotonic() + _START_TIMEOUT
        self._watch_child(child)

    def _ready(self, child: ChildProcess) -> None:
        del self._starting[child]
        try:
            ready = child.channel.recv() == READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._unready(child)
            return
        self._idle.append(child)
        while self._waiting and self._idle:
            self._dispatch(self._waiting.popleft())

    def _unready(self, child: ChildProcess) -> None:
        # It died or hung while importing the app: the job waiting longest fails.
        self._starting.pop(child, None)
        pid, code = child.proc.pid, child.proc.exitcode
        self._discard(child)
        if self._waiting:
            self._ended(
                self._waiting.popleft(),
                ConfigurationError(
                    f"child process {pid} could not start (exit code {code}); is the app "
                    "importable in a fresh interpreter?"
                ),
            )

    def _discard(self, child: ChildProcess) -> None:
        # A child that cannot be trusted with another job: its place waits for a new one.
        self._unwatch_child(child)
        child.run = child.wire = None
        if child in self._idle:
            self._idle.remove(child)
        child.stop()
        if self._children[child.index] is child:
            self._children[child.index] = None

    # -- the end ----------------------------------------------------------------------------

    def _release(self) -> None:
        # END on connections not waiting for a reply, every child ended (once).
        with self._release_lock:
            if self._released.is_set():
                return
            for wire in self.wires:
                if not wire.done and not wire.slot.in_io:
                    self._finish(wire)
            for child in self._children:
                if child is not None:
                    self._unwatch_child(child)
            for i, child in enumerate(self._children):
                if child is not None:
                    child.stop()
                    self._children[i] = None
            self._idle.clear()
            self._released.set()

    def _close_selector(self) -> None:
        with self._release_lock:
            if not self._open:
                return
            self._open = False
            self._helpers.shutdown(wait=False)
            self._poller.close()
            self._wake_r.close()
            self._wake_w.close()

"""The worker: fetches jobs of an :class:`~werk.App`, runs them, and never loses one.

Lifecycle (the Faktory worker protocol):

* **start**: one ``wid`` for the process, HELLO (wid, hostname, pid, labels) on every
  connection, ``on_startup`` hooks, a heartbeat thread, ``concurrency`` fetch slots.
* **quiet** (TSTP, :meth:`Worker.quiet` or the web UI): stop fetching, let running jobs
  finish and report, keep beating, stay alive until told to terminate.
* **terminate** (TERM/INT, :meth:`Worker.terminate` or the web UI): stop fetching, wait up to
  ``shutdown_timeout`` for running jobs (still beating), stop what is still running and FAIL
  it with errtype ``Shutdown`` (so it is retried), END on every connection, return. A second
  TERM/INT skips the wait.

Stopping a job at the deadline: a child process (process executor) is killed, an async
handler is cancelled. A sync handler on a thread cannot be stopped (Python has no way to),
so every thread werk starts is a daemon thread that the interpreter never waits for: the
process exits as soon as :meth:`Worker.run` returns and the program ends, and ``werk
worker`` ends its process at once when :attr:`Worker.abandoned` is non-zero, so that no
FAILed job runs on to completion (and so twice).

A job's own timeout is watched by the same supervisor loop: at the deadline the job is FAILed
with errtype ``JobTimeout`` (on the supervisor's connection) and stopped as above, except that
a slot thread stuck in a sync handler is abandoned after a grace period and replaced.

The worker owns the lifecycle; what its slots share lives in a
:class:`~werk.worker._crew.Crew`, and the executor (thread, asyncio or process) only moves
bytes and calls handlers, each slot following the same :class:`~werk.worker._slot.Slot`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from werk._errors import ConfigurationError
from werk._protocol.resp import ErrorReply
from werk.client import DEFAULT_TIMEOUT, BeatState, Client, ClientSettings, resolve_url
from werk.worker._app import App
from werk.worker._backoff import Backoff, Deadline
from werk.worker._clients import ThreadClients
from werk.worker._crew import Crew
from werk.worker._heartbeat import Heartbeat
from werk.worker._host import Executor
from werk.worker._queues import QueueSelector, QueueSpec, Strategy, parse_queues
from werk.worker._signals import dump_stacks, install_signals
from werk.worker._slot import Slot

if TYPE_CHECKING:
    import ssl

__all__ = ["ExecutorName", "Worker"]

log = logging.getLogger("werk.worker")

ExecutorName = Literal["thread", "asyncio", "process"]
State = Literal["running", "quiet", "terminate"]

_SIGNAL_POLL = 0.25  # seconds: the longest a signal can wait for its handler to run
_LAST_REPORTS = 5.0  # seconds the shutdown's last ACKs/FAILs get after the hard stop


def _seconds(name: str, value: object, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 or (zero and value == 0))
    ):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    return float(value)


class Worker:
    """Runs the jobs of ``app`` from a Faktory server until terminated.

    ``url`` defaults to the app's URL, then ``FAKTORY_PROVIDER`` / ``FAKTORY_URL``. ``queues``
    is a list of names (or ``(name, weight)`` pairs, or a ``{name: weight}`` mapping);
    ``queue_strategy`` is ``"strict"`` (list order is priority), ``"weighted"`` or
    ``"random"``. ``executor`` is ``"thread"`` (sync handlers on threads, async ones on an
    event loop), ``"asyncio"`` (everything on one event loop, uvloop's when it is installed
    unless ``WERK_EVENT_LOOP=asyncio``; sync handlers in a thread pool) or ``"process"``
    (each slot has a child process, replaced if it crashes).
    ``job_timeout`` is the time limit, in seconds, of a job that does not carry its own
    (``@app.job(timeout=...)``, its ``custom.werk_timeout``); ``None``: no limit. A job past
    its limit is FAILed with errtype ``JobTimeout`` and stopped (see the README's
    "Timeouts"): a slot thread stuck in a sync handler ``timeout_grace`` seconds later is
    abandoned, its slot given to a new thread (:attr:`abandoned_threads` counts them).
    ``timeout`` bounds connecting, each write and each reply, as for every werk client
    (:data:`werk.client.DEFAULT_TIMEOUT`, 5 s: a healthy server answers in milliseconds, and
    a dead one is noticed, and a slot reconnects, that much sooner).

    Example::

        worker = werk.Worker(app, concurrency=20, queues={"critical": 3, "default": 1},
                             queue_strategy="weighted", labels=["images"])
        worker.run()            # blocks; TERM/INT/TSTP/TTIN handled when on the main thread
    """

    def __init__(
        self,
        app: App,
        url: str | None = None,
        *,
        concurrency: int = 20,
        queues: Iterable[QueueSpec] | Mapping[str, int] | None = None,
        queue_strategy: Strategy = "strict",
        labels: Iterable[str] = (),
        shutdown_timeout: float = 25.0,
        executor: ExecutorName = "thread",
        password: str | None = None,
        wid: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat_interval: float = 15.0,
        timeout: float = DEFAULT_TIMEOUT,
        job_timeout: float | None = None,
        timeout_grace: float = 5.0,
    ) -> None:
        if not isinstance(app, App):
            raise ConfigurationError(f"a Worker runs the jobs of a werk.App, not {app!r}")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency!r}")
        if executor not in ("thread", "asyncio", "process"):
            raise ConfigurationError(
                f"executor must be thread, asyncio or process, not {executor!r}"
            )
        self.app = app
        self.wid: str = wid or uuid.uuid4().hex[:16]
        """This process's worker id: every connection of the worker says HELLO with it."""
        if not isinstance(labels, (str, bytes)):  # (a string is refused below)
            labels = tuple(labels) or ("python",)
        self.concurrency = concurrency
        self.queues = parse_queues(queues)
        self.shutdown_timeout = _seconds("shutdown_timeout", shutdown_timeout, zero=True)
        self.heartbeat_interval = _seconds("heartbeat_interval", heartbeat_interval)
        self.executor_name: ExecutorName = executor
        self.job_timeout = None if job_timeout is None else _seconds("job_timeout", job_timeout)
        self.timeout_grace = _seconds("timeout_grace", timeout_grace, zero=True)
        # Resolved once (a bad URL fails here, a default TLS context is built once); every
        # connection of the worker is made from the same arguments.
        url = url or app.url
        timeout = _seconds("timeout", timeout)
        settings = ClientSettings(
            url,
            password=password if password is not None else app.password,
            wid=self.wid,
            labels=labels,
            timeout=timeout,
            connect_timeout=min(timeout, DEFAULT_TIMEOUT),
            ssl_context=ssl_context,
        )
        self.labels: tuple[str, ...] = settings.labels
        client_args = {
            "url": url,
            "password": settings.endpoint.password,
            "wid": self.wid,
            "labels": self.labels,
            "timeout": settings.timeout,
            "connect_timeout": settings.connect_timeout,
            "ssl_context": settings.ssl_context,
            "hostname": settings.hostname,
        }
        self._crew = Crew(
            app,
            settings,
            client_args,
            QueueSelector(self.queues, queue_strategy),
            concurrency=concurrency,
            request=self._request,
            job_timeout=self.job_timeout,
            timeout_grace=self.timeout_grace,
        )
        self._clients = ThreadClients(self._crew.new_client)
        # Job code (batches, tracking) talks on the worker's connection of its thread; a
        # child process of the process executor makes its own from these arguments (an
        # SSLContext cannot cross processes: then the child refuses, see werk.worker._child).
        self._crew.ledger.connect = self._clients.get
        self._child_client_args: dict[str, Any] = {
            "url": resolve_url(url),
            "password": settings.endpoint.password,
            "timeout": settings.timeout,
            "connect_timeout": settings.connect_timeout,
            "hostname": settings.hostname,
            "custom_tls": ssl_context is not None,
        }
        self._heartbeat: Heartbeat | None = None
        self._executor: Executor | None = None
        self._state: State = "running"
        self._requests: deque[str] = deque()
        self._wake = threading.Event()
        self._started = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._reporter: Client | None = None  # the supervisor's, for timed-out jobs' FAILs
        self.abandoned = 0
        """Jobs the shutdown deadline FAILed back while their handlers still ran (0 after a
        clean stop). Sync ones may still be running on daemon threads until the process
        exits: exit soon after :meth:`run` returns, as ``werk worker`` does. (A handler
        that returns before the FAILs go out gets its ACK instead, and is not counted.)"""

    # -- state ------------------------------------------------------------------------------

    def client(self) -> Client:
        """This thread's connection as this worker: HELLO says its wid, labels and hostname.

        The rule is :meth:`werk.App.client`'s: one connection per thread, opened on first
        use and reused by every later call on that thread; the worker closes them all when
        it stops.

        Example::

            worker.client().push("Audit", worker.wid)
        """
        return self._clients.get()

    @property
    def state(self) -> State:
        """``"running"``, ``"quiet"`` or ``"terminate"`` (only ever moves forward)."""
        return self._state

    @property
    def queue_strategy(self) -> Strategy:
        """How each FETCH orders :attr:`queues`: ``"strict"``, ``"weighted"`` or ``"random"``."""
        return self._crew.selector.strategy

    @property
    def processed(self) -> int:
        """Jobs this worker ran to completion (ACKed) since it started."""
        return self._crew.ledger.processed

    @property
    def failed(self) -> int:
        """Jobs this worker FAILed since it started (the shutdown deadline's included)."""
        return self._crew.ledger.failed

    @property
    def abandoned_threads(self) -> int:
        """Slot threads given up on, each stuck in a sync handler past its job's timeout
        and grace period (their slots run on new threads; each is also logged once)."""
        return self._crew.abandoned_threads

    @property
    def unknown_jobs(self) -> dict[str, int]:
        """Jobs FAILed because the app has no handler for their type, by queue (no
        middleware sees them: they never run)."""
        return dict(self._crew.ledger.unknown)

    @property
    def outages(self) -> int:
        """Times this worker lost the server (an outage counts once, however many of its
        connections noticed it); each one ends when a connection gets through again."""
        return self._crew.outage.count

    @property
    def outage_seconds(self) -> float:
        """Seconds this worker has spent without the server, the current outage included."""
        return self._crew.outage.seconds()

    @property
    def error(self) -> BaseException | None:
        """Why the worker stopped on its own (a wrong password, a failed start), or None."""
        return self._error or self._crew.error

    def quiet(self) -> None:
        """Stop fetching; running jobs finish and are reported; the worker stays up."""
        self._request("quiet")

    def terminate(self) -> None:
        """Begin the graceful shutdown (see the class docstring)."""
        self._request("terminate")

    def _request(self, what: str) -> None:
        # Called from signal handlers, the heartbeat thread, slots or user code: only
        # record it; the supervisor acts on it.
        self._requests.append(what)
        self._wake.set()

    # -- running ----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until terminated (blocks). On the main thread, handles TERM/INT/TSTP/TTIN.

        Returns within about two seconds of the shutdown deadline, whatever the jobs are
        doing; see :attr:`abandoned` for handlers that may still be running then.
        """
        restore = install_signals(self._request)
        try:
            self._run()
        finally:
            restore()

    def start(self) -> Worker:
        """Run in a background thread (for tests and embedding); returns once started."""
        self._thread = threading.Thread(target=self.run, name="werk-worker", daemon=True)
        self._thread.start()
        self._started.wait()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Terminate and wait up to ``timeout`` seconds for the shutdown to complete."""
        self.terminate()
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the worker has shut down; True if it has."""
        return self._done.wait(timeout)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _make_executor(self) -> Executor:
        crew = self._crew
        if self.executor_name == "asyncio":
            from werk.worker._aio import AsyncSlots

            return AsyncSlots(crew)
        if self.executor_name == "process":
            from werk.worker._processes import ProcessSlots, app_reference

            ref = app_reference(self.app)
            return ProcessSlots(
                crew, ref, self.wid, self.app.default_backtrace, self._child_client_args
            )
        from werk.worker._threads import ThreadSlots

        return ThreadSlots(crew)

    def _run(self) -> None:
        crew = self._crew
        try:
            self._executor = executor = self._make_executor()
            self.app.hooks.call("on_startup", self)
            log.info(
                "worker %s starting: %d %s slots, queues %s (%s), server %s",
                self.wid,
                self.concurrency,
                self.executor_name,
                ", ".join(f"{n}:{w}" if w != 1 else n for n, w in self.queues),
                self.queue_strategy,
                crew.where,
            )
            self._heartbeat = Heartbeat(
                crew.new_client(),
                state=self._beat_state,
                on_reply=self._request,
                interval=self.heartbeat_interval,
                outage=crew.outage,
            )
            self._heartbeat.start()
            executor.start()
        except BaseException as exc:
            self._error = exc
            self._shutdown()
            raise
        finally:
            self._started.set()
        try:
            self._supervise()
        finally:
            self._shutdown()

    def _supervise(self) -> None:
        crew = self._crew
        deadline: float | None = None
        force = False
        while True:
            # Never block without a timeout: a signal delivered to another thread only sets
            # CPython's flag, and the main thread runs the Python handler (which wakes us)
            # the next time it executes bytecode. An unbounded wait would sleep through it.
            timeout = _SIGNAL_POLL
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            due = crew.ledger.next_deadline()  # a job's timeout (a job begun meanwhile
            if due is not None:  # waits at most one poll more)
                timeout = min(timeout, max(0.0, due - time.monotonic()))
            self._wake.wait(timeout)
            self._wake.clear()
            while self._requests:
                what = self._requests.popleft()
                if what in ("SIGTERM", "SIGINT", "terminate"):
                    if self._state == "terminate" and what != "terminate":
                        log.warning("second %s: stopping now", what)
                        force = True
                    self._enter("terminate")
                elif what in ("SIGTSTP", "quiet"):
                    self._enter("quiet")
                elif what == "SIGTTIN":
                    dump_stacks()
                elif what == "slots-exited" and self._state == "quiet":
                    log.info("worker %s quiet: every job reported, no slot fetching", self.wid)
            self._expire()
            if self._state != "terminate":
                continue
            if deadline is None:
                deadline = time.monotonic() + self.shutdown_timeout
            inflight = crew.ledger.inflight
            if crew.slots_done.is_set() and not inflight:
                return
            if force or time.monotonic() >= deadline:
                if inflight:
                    log.warning(
                        "%d jobs still running after %.1f s; failing them",
                        len(inflight),
                        self.shutdown_timeout,
                    )
                return

    def _expire(self) -> None:
        # Jobs past their timeout: FAILed now (the ledger's claim: their handlers' outcome
        # is ignored), then stopped as far as the executor can.
        expired = self._crew.ledger.expire(time.monotonic())
        if not expired:
            return
        self._report([line for _, line in expired])
        if self._executor is not None:
            self._executor.stop([run for run, _ in expired])

    def _report(self, lines: list[bytes]) -> None:
        # One write on the supervisor's own connection; once more on a new one if it broke.
        for attempt in (1, 2):
            if self._reporter is None:
                self._reporter = self._crew.new_client()
            try:
                replies = self._reporter.execute_many(lines)
            except Exception as exc:
                self._reporter.close()
                self._reporter = None
                if attempt == 2:
                    log.error(
                        "could not report %d timed-out jobs (%s); they run again when their "
                        "reservations expire",
                        len(lines),
                        exc,
                    )
                continue
            for line, reply in zip(lines, replies, strict=False):
                if isinstance(reply, ErrorReply):
                    log.error("server refused %s: %s", line[:80], reply.to_exception())
            return

    def _beat_state(self) -> BeatState | None:
        # What BEAT reports: nothing while running.
        state = self._state
        return None if state == "running" else state

    def _enter(self, state: State) -> None:
        order = ("running", "quiet", "terminate")
        if order.index(state) <= order.index(self._state):
            return  # forward only; a quiet request while terminating is ignored
        self._state = state
        self._crew.fetching = False
        if state == "quiet":
            log.info("worker %s quiet: no new jobs; running jobs will finish", self.wid)
            self.app.hooks.call("on_quiet", self)
        else:
            self._crew.stopping.set()
            log.info(
                "worker %s terminating: waiting up to %.1f s for %d running jobs",
                self.wid,
                self.shutdown_timeout,
                len(self._crew.ledger.inflight),
            )
            self.app.hooks.call("on_shutdown", self)
        if self._heartbeat is not None:
            self._heartbeat.beat_now()

    def _shutdown(self) -> None:
        crew = self._crew
        ledger = crew.ledger
        self._state = "terminate"
        crew.fetching = False
        crew.stopping.set()
        crew.hard_stop.set()
        abandoned = ledger.abandon(
            "Shutdown", f"worker {self.wid} shut down before the job finished"
        )
        self.abandoned = len(abandoned)
        executor = self._executor
        if executor is not None:
            executor.stop([run for run, _ in abandoned])
        # Slots blocked in FETCH return within ~2 s; a job they get is given back.
        give_up = time.monotonic() + 2.5
        while (
            executor is not None
            and executor.io_busy()
            and not crew.slots_done.wait(0.05)
            and time.monotonic() < give_up
        ):
            pass
        if executor is not None:
            executor.close()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._reporter is not None:
            self._reporter.close()
        if abandoned:
            # Last: a sync handler that could not be stopped gets the least possible time
            # between its job's FAIL (after which the job may be retried) and the exit; one
            # that returned meanwhile is acknowledged instead.
            lines, self.abandoned = ledger.settle(abandoned)
            self._send_last_reports(lines)
        self._clients.close()
        log.info(
            "worker %s stopped: %d jobs done, %d failed",
            self.wid,
            ledger.processed,
            ledger.failed,
        )
        self._done.set()

    def _send_last_reports(self, lines: list[bytes]) -> None:
        # A slot that fetches nothing: the reports in one write, the owed ones sent again,
        # until the server has them all or the time is up.
        from werk.worker._threads import drive

        slot = Slot(
            self._crew,
            reports=lines,
            stop=Deadline(_LAST_REPORTS),
            backoff=Backoff(base=0.05, cap=1.0),
        )
        client = self._crew.new_client()
        try:
            drive(slot, client)
        finally:
            client.close()

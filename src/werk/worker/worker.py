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

Example::

    app = werk.App()

    @app.job
    def hello(name: str) -> None:
        print("hello", name)

    werk.Worker(app, concurrency=10, queues=["critical", "default"]).run()
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from werk._errors import ConfigurationError
from werk.client import AsyncClient, BeatState, Client, ClientSettings
from werk.worker import signals
from werk.worker._round_trip import reconnectable, report_and_fetch, report_owed
from werk.worker.app import App
from werk.worker.backoff import Backoff, Outage
from werk.worker.heartbeat import Heartbeat
from werk.worker.queues import QueueSelector, QueueSpec, Strategy, parse_queues
from werk.worker.runner import Runner

if TYPE_CHECKING:
    import ssl

__all__ = ["ExecutorName", "Worker"]

log = logging.getLogger("werk.worker")

ExecutorName = Literal["thread", "asyncio", "process"]
State = Literal["running", "quiet", "terminate"]

_SIGNAL_POLL = 0.25  # seconds: the longest a signal can wait for its handler to run
_AnyClient = TypeVar("_AnyClient", Client, AsyncClient)


class _Executor(Protocol):
    def start(self) -> None: ...
    def stop_jobs(self) -> None: ...
    def io_busy(self) -> bool: ...
    def close(self) -> None: ...


class Worker:
    """Runs the jobs of ``app`` from a Faktory server until terminated.

    ``url`` defaults to the app's URL, then ``FAKTORY_PROVIDER`` / ``FAKTORY_URL``. ``queues``
    is a list of names (or ``(name, weight)`` pairs, or a ``{name: weight}`` mapping);
    ``queue_strategy`` is ``"strict"`` (list order is priority), ``"weighted"`` or
    ``"random"``. ``executor`` is ``"thread"`` (sync handlers on threads, async ones on an
    event loop), ``"asyncio"`` (everything on one event loop, sync handlers in a thread
    pool) or ``"process"`` (each slot has a child process, replaced if it crashes).

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
        timeout: float = 10.0,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
        if executor not in ("thread", "asyncio", "process"):
            raise ConfigurationError(
                f"executor must be thread, asyncio or process, not {executor!r}"
            )
        self.app = app
        self.wid: str = wid or uuid.uuid4().hex[:16]
        """This process's worker id: every connection of the worker says HELLO with it."""
        self.labels: tuple[str, ...] = tuple(labels) or ("python",)
        self._url = url or app.url
        # Resolved once (a bad URL fails here, a default TLS context is built once); every
        # connection is a werk.Client or AsyncClient made from it by client()/async_client().
        self.settings = ClientSettings(
            self._url,
            password=password if password is not None else app.password,
            wid=self.wid,
            labels=self.labels,
            timeout=timeout,
            connect_timeout=min(timeout, 5.0),
            ssl_context=ssl_context,
        )
        self.concurrency = concurrency
        self.queues = parse_queues(queues)
        self.selector = QueueSelector(self.queues, queue_strategy)
        self.shutdown_timeout = shutdown_timeout
        self.executor_name: ExecutorName = executor
        self.heartbeat_interval = heartbeat_interval
        self.outage = Outage(str(self.settings.endpoint))
        self.stopping = threading.Event()  # terminate has begun (JobContext.shutting_down)
        self.hard_stop = threading.Event()  # the deadline passed: no more waiting or retrying
        self.runner = Runner(app, self.wid, self.stopping)
        self.heartbeat: Heartbeat | None = None
        self._executor: _Executor | None = None
        self._state: State = "running"
        self._requests: deque[str] = deque()
        self._wake = threading.Event()
        self._slots_done = threading.Event()
        self._started = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.abandoned = 0
        """Jobs the shutdown deadline FAILed back while their handlers still ran (0 after a
        clean stop). Sync ones may still be running on daemon threads until the process
        exits: exit soon after :meth:`run` returns, as ``werk worker`` does. (A handler
        that returns before the FAILs go out gets its ACK instead, and is not counted.)"""

    # -- state ------------------------------------------------------------------------------

    def client(self) -> Client:
        """A new connection for this worker: HELLO says its wid, labels and hostname.

        Example::

            with worker.client() as client:
                client.beat()
        """
        return self._new_client(Client)

    def async_client(self) -> AsyncClient:
        """The asyncio twin of :meth:`client` (use it on one event loop only)."""
        return self._new_client(AsyncClient)

    def _new_client(self, flavour: type[_AnyClient]) -> _AnyClient:
        s = self.settings
        return flavour(
            self._url,
            password=s.endpoint.password,
            wid=self.wid,
            labels=self.labels,
            timeout=s.timeout,
            connect_timeout=s.connect_timeout,
            ssl_context=s.ssl_context,
            hostname=s.hostname,
        )

    @property
    def state(self) -> State:
        """``"running"``, ``"quiet"`` or ``"terminate"`` (only ever moves forward)."""
        return self._state

    @property
    def fetching(self) -> bool:
        """True while slots should fetch new jobs."""
        return self._state == "running"

    def quiet(self) -> None:
        """Stop fetching; running jobs finish and are reported; the worker stays up."""
        self._request("quiet")

    def terminate(self) -> None:
        """Begin the graceful shutdown (see the class docstring)."""
        self._request("terminate")

    def _request(self, what: str) -> None:
        # Called from signal handlers, the heartbeat thread or user code: only record it.
        self._requests.append(what)
        self._wake.set()

    def fatal(self, exc: BaseException) -> None:
        """An error no retry can fix (a wrong password): log it once and terminate."""
        if self.error is None:
            self.error = exc
            log.error("worker %s cannot continue: %s", self.wid, exc)
        self._request("terminate")

    def slots_exited(self) -> None:
        """Called by the executor when its last slot has exited."""
        self._slots_done.set()
        self._request("slots-exited")

    def lost_report(self, report: bytes) -> None:
        """A finished job's ACK/FAIL could not be delivered before the hard stop."""
        log.error(
            "could not deliver %s before the shutdown deadline (server unreachable); "
            "the job will run again when its reservation expires",
            report.decode("utf-8", "replace").strip()[:200],
        )

    # -- running ----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until terminated (blocks). On the main thread, handles TERM/INT/TSTP/TTIN.

        Returns within about two seconds of the shutdown deadline, whatever the jobs are
        doing; see :attr:`abandoned` for handlers that may still be running then.
        """
        restore = signals.install(self._request)
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

    def _make_executor(self) -> _Executor:
        if self.executor_name == "asyncio":
            from werk.worker.aio import AsyncSlots

            return AsyncSlots(self)
        if self.executor_name == "process":
            from werk.worker.processes import ProcessSlots

            return ProcessSlots(self)
        from werk.worker.threads import ThreadSlots

        return ThreadSlots(self)

    def _run(self) -> None:
        try:
            self._executor = executor = self._make_executor()
            self.app.hooks.call("on_startup", self)
            log.info(
                "worker %s starting: %d %s slots, queues %s (%s), server %s",
                self.wid,
                self.concurrency,
                self.executor_name,
                ", ".join(f"{n}:{w}" if w != 1 else n for n, w in self.queues),
                self.selector.strategy,
                self.settings.endpoint,
            )
            self.heartbeat = Heartbeat(
                self.client(),
                state=self._beat_state,
                on_reply=self._request,
                interval=self.heartbeat_interval,
                outage=self.outage,
            )
            self.heartbeat.start()
            executor.start()
        except BaseException as exc:
            self.error = exc
            self._shutdown()
            raise
        finally:
            self._started.set()
        try:
            self._supervise()
        finally:
            self._shutdown()

    def _supervise(self) -> None:
        deadline: float | None = None
        force = False
        while True:
            # Never block without a timeout: a signal delivered to another thread only sets
            # CPython's flag, and the main thread runs the Python handler (which wakes us)
            # the next time it executes bytecode. An unbounded wait would sleep through it.
            timeout = _SIGNAL_POLL
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
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
                    signals.dump_stacks()
                elif what == "slots-exited" and self._state == "quiet":
                    log.info("worker %s quiet: every job reported, no slot fetching", self.wid)
            if self._state != "terminate":
                continue
            if deadline is None:
                deadline = time.monotonic() + self.shutdown_timeout
            if self._slots_done.is_set() and not self.runner.inflight:
                return
            if force or time.monotonic() >= deadline:
                if self.runner.inflight:
                    log.warning(
                        "%d jobs still running after %.1f s; failing them",
                        len(self.runner.inflight),
                        self.shutdown_timeout,
                    )
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
        if state == "quiet":
            log.info("worker %s quiet: no new jobs; running jobs will finish", self.wid)
            self.app.hooks.call("on_quiet", self)
        else:
            self.stopping.set()
            log.info(
                "worker %s terminating: waiting up to %.1f s for %d running jobs",
                self.wid,
                self.shutdown_timeout,
                len(self.runner.inflight),
            )
            self.app.hooks.call("on_shutdown", self)
        if self.heartbeat is not None:
            self.heartbeat.beat_now()

    def _shutdown(self) -> None:
        self._state = "terminate"
        self.stopping.set()
        self.hard_stop.set()
        abandoned = self.runner.abandon(
            "Shutdown", f"worker {self.wid} shut down before the job finished"
        )
        self.abandoned = len(abandoned)
        executor = self._executor
        if executor is not None:
            executor.stop_jobs()
        # Slots blocked in FETCH return within ~2 s; a job they get is given back.
        give_up = time.monotonic() + 2.5
        while (
            executor is not None
            and executor.io_busy()
            and not self._slots_done.wait(0.05)
            and time.monotonic() < give_up
        ):
            pass
        if executor is not None:
            executor.close()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if abandoned:
            # Last: a sync handler that could not be stopped gets the least possible time
            # between its job's FAIL (after which the job may be retried) and the exit; one
            # that returned meanwhile is acknowledged instead.
            lines, self.abandoned = self.runner.settle(abandoned)
            self._send_reports(lines)
        log.info(
            "worker %s stopped: %d jobs done, %d failed",
            self.wid,
            self.runner.processed,
            self.runner.failed,
        )
        self._done.set()

    def _send_reports(self, lines: list[bytes], budget: float = 5.0) -> None:
        client = self.client()
        deadline = time.monotonic() + budget
        backoff = Backoff(base=0.05, cap=1.0)
        try:
            for line in lines:
                while True:
                    try:
                        error, _ = report_and_fetch(client, line, None)
                    except Exception as exc:
                        if not reconnectable(exc) or time.monotonic() >= deadline:
                            self.lost_report(line)
                            break
                    else:
                        if error is None:
                            break
                        if not report_owed(error):
                            log.warning("server refused a shutdown FAIL: %s", error)
                            break
                        if time.monotonic() >= deadline:  # (it could not store it)
                            self.lost_report(line)
                            break
                    time.sleep(backoff.next_delay())
        finally:
            client.close()

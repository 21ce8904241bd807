"""Process control and bookkeeping shared by the fault tests.

* :data:`SCALE`: the size of every scenario, ``WERK_FAULT_SCALE`` (default 1, the size that
  fits CI: a few tens of seconds for the whole suite); ``WERK_FAULT_SCALE=20`` by hand.
* :class:`WorkerProcess`: ``werk worker`` (or ``Worker.run()`` in a script) as a real child
  process working :mod:`tests.faults.fault_jobs`, its log in a file.
* :class:`Ledger`: what the jobs wrote (which jid ran, how often, in which process).
* :class:`Pushers`: producer threads that push until N pushes are acknowledged, and keep
  apart the pushes whose fate is unknown (the connection broke after the PUSH was sent).
* :class:`Tally`: the at-least-once accounting: nothing acknowledged lost, nothing stored
  twice, duplicate runs counted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.worker.helpers import ROOT, WERK, subprocess_env

import werk
from werk._errors import NetworkError, ServerError
from werk.server._storage import SQLiteStorage
from werk.server._storage.base import QUEUE, WORKING

SCALE = max(1, int(os.environ.get("WERK_FAULT_SCALE", "1")))

APP = "tests.faults.fault_jobs:app"


def scaled(n: int) -> int:
    """``n`` at the size this run asked for (``WERK_FAULT_SCALE``)."""
    return n * SCALE


def faktory_info(url: str) -> dict[str, Any]:
    """The ``faktory`` part of the server's INFO (queues, sets, totals)."""
    with werk.Client(url, timeout=5) as client:
        info: dict[str, Any] = client.info()["faktory"]
        return info


def worked_off(url: str, ledger: Ledger) -> bool:
    """Nothing queued, and the worker's ledger did not move for half a second (what is
    still reserved then was handed to a connection that died before it got the job)."""
    before = len(ledger.lines())
    if sum(faktory_info(url)["queues"].values()):
        return False
    time.sleep(0.5)
    return len(ledger.lines()) == before and not sum(faktory_info(url)["queues"].values())


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


class WorkerProcess:
    """A worker in a child process: ``werk worker tests.faults.fault_jobs:app ARGS`` or, with
    ``library=(executor, shutdown_timeout, concurrency)``, ``Worker.run()`` in a script."""

    def __init__(
        self,
        url: str,
        *args: str,
        log_path: Path,
        library: tuple[str, str, str] | None = None,
    ) -> None:
        if library is None:
            self.cmd = [*WERK, "worker", APP, "--log-level", "INFO", *args]
        else:
            self.cmd = [sys.executable, "-m", "tests.faults.library_worker", *library]
        self.url = url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.exited_at: float | None = None

    def start(self) -> WorkerProcess:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=ROOT,
                env=subprocess_env(self.url),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.send(signal.SIGKILL)
        self.wait(10)

    def wait(self, timeout: float) -> int:
        """Wait for the exit (TimeoutExpired after ``timeout``); the exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self.exited_at is None:
            self.exited_at = time.monotonic()
        return code

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)


class Ledger:
    """The ``ledger`` file the jobs of :mod:`tests.faults.fault_jobs` append to."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "ledger"

    def lines(self) -> list[tuple[str, int, str]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            event, pid, jid = line.split(" ", 2)
            out.append((event, int(pid), jid))
        return out

    def count(self, event: str) -> Counter[str]:
        """How many times each jid wrote ``event``."""
        return Counter(jid for e, _, jid in self.lines() if e == event)

    def pids(self, event: str) -> set[int]:
        return {pid for e, pid, _ in self.lines() if e == event}


class Pushers:
    """``threads`` producers, each with its own client, pushing ``record`` jobs until ``total``
    pushes are acknowledged (or ``give_up`` seconds pass).

    A push answered ``+OK`` is *acked*; one whose connection broke after it was sent is
    *uncertain* (stored or not); one answered ``-ERR`` is *refused* (not stored).
    """

    def __init__(
        self,
        url: str,
        directory: Path,
        total: int,
        *,
        threads: int = 4,
        timeout: float = 3.0,
        give_up: float = 120.0,
        payload: str = "",
        queue: str = "default",
    ) -> None:
        self.url = url
        self.queue = queue
        self.directory = str(directory)
        self.total = total
        self.timeout = timeout
        self.payload = payload
        self.acked: set[str] = set()
        self.uncertain: set[str] = set()
        self.refused: dict[str, str] = {}
        self.failed_connects = 0
        self.last_ack = time.monotonic()
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + give_up
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._push, args=(n,), daemon=True) for n in range(threads)
        ]

    def start(self) -> Pushers:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop pushing (each producer finishes the push it is in)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "pushers still running"

    def _push(self, n: int) -> None:
        client = werk.Client(self.url, timeout=self.timeout, connect_timeout=self.timeout)
        i = 0
        try:
            while (
                len(self.acked) < self.total
                and time.monotonic() < self._deadline
                and not self._stop.is_set()
            ):
                jid = f"fault-{n:02d}-{i:07d}"
                i += 1
                try:
                    client.push("record", self.directory, self.payload, jid=jid, queue=self.queue)
                except NetworkError as exc:
                    with self._lock:
                        if exc.command_sent:
                            self.uncertain.add(jid)
                        else:
                            self.failed_connects += 1
                    time.sleep(0.02)
                except ServerError as exc:
                    with self._lock:
                        self.refused[jid] = str(exc)
                    time.sleep(0.02)
                else:
                    with self._lock:
                        self.acked.add(jid)
                        self.last_ack = time.monotonic()
        finally:
            client.close()


def stored_jobs(data_dir: Path) -> list[tuple[str, int]]:
    """``(jid, kind)`` of every job a stopped server left in ``data_dir`` (SQLite)."""
    store = SQLiteStorage(data_dir / "werk.sqlite3")
    try:
        return [(e.jid, e.kind) for e in store.load().entries]
    finally:
        store.close()


@dataclass
class Tally:
    """At-least-once accounting of one scenario.

    ``acked``/``uncertain``: the pushes; ``ran``: runs per jid (the ledger); ``held``: the
    server's entries per jid at the end (queued, scheduled, retry, dead or reserved).
    """

    acked: set[str]
    ran: Counter[str]
    held: Counter[str] = field(default_factory=Counter)
    uncertain: set[str] = field(default_factory=set)
    reserved: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)

    @classmethod
    def from_storage(
        cls, acked: set[str], ran: Counter[str], data_dir: Path, uncertain: set[str] = frozenset()
    ) -> Tally:
        entries = stored_jobs(data_dir)
        return cls(
            acked=set(acked),
            ran=ran,
            held=Counter(jid for jid, _ in entries),
            uncertain=set(uncertain),
            reserved={jid for jid, kind in entries if kind == WORKING},
            queued={jid for jid, kind in entries if kind == QUEUE},
        )

    @property
    def lost(self) -> set[str]:
        """Acknowledged, yet neither run nor held by the server."""
        return self.acked - self.ran.keys() - self.held.keys()

    @property
    def held_twice(self) -> set[str]:
        return {jid for jid, n in self.held.items() if n > 1}

    @property
    def invented(self) -> set[str]:
        """Ran or held, yet never pushed."""
        return (self.ran.keys() | self.held.keys()) - self.acked - self.uncertain

    @property
    def duplicate_runs(self) -> int:
        """Runs beyond the first of a jid."""
        return sum(n - 1 for n in self.ran.values() if n > 1)

    @property
    def will_run_again(self) -> set[str]:
        """Ran, yet still held (its ACK did not count): at-least-once will run it again."""
        return self.ran.keys() & self.held.keys()

    @property
    def stranded(self) -> set[str]:
        """Reserved but never run: handed to a connection that died; back after expiry."""
        return self.reserved - self.ran.keys()

    def summary(self) -> str:
        return (
            f"acked={len(self.acked)} uncertain={len(self.uncertain)} "
            f"ran={len(self.ran)} held={sum(self.held.values())} lost={len(self.lost)} "
            f"duplicate_runs={self.duplicate_runs} will_run_again={len(self.will_run_again)} "
            f"stranded={len(self.stranded)}"
        )

    def check(self) -> None:
        """Nothing acknowledged lost, nothing stored twice, nothing invented."""
        assert not self.lost, f"lost {sorted(self.lost)[:10]}; {self.summary()}"
        assert not self.held_twice, f"stored twice: {sorted(self.held_twice)[:10]}"
        assert not self.invented, f"never pushed: {sorted(self.invented)[:10]}"

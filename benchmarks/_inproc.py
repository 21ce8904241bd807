"""The server's dispatcher alone, in this process (no socket): what server.py, unique.py
and batch.py time in child processes, and how they run those children."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any


class Dispatcher:
    """A manager (``storage``: ``memory``, or ``sqlite`` in the file ``path``) and one
    client's state, as a connection has them, fed command lines without their CRLF."""

    def __init__(
        self, storage: str = "memory", path: str = "", extensions: Sequence[object] = ()
    ) -> None:
        try:  # this tree
            from werk.server._clock import ManualClock
            from werk.server._dispatch import ClientState, ServerStats, dispatch
            from werk.server._manager import Manager
            from werk.server._periodic import PeriodicTasks
            from werk.server._storage import MemoryStorage, SQLiteStorage
        except ImportError:  # a tree from before the private modules (memory, no extension)
            from werk.server.clock import ManualClock  # type: ignore[no-redef]
            from werk.server.commands import (  # type: ignore[no-redef]
                ClientState,
                ServerStats,
                dispatch,
            )
            from werk.server.manager import Manager  # type: ignore[no-redef]
            from werk.server.storage import MemoryStorage  # type: ignore[no-redef]

            self.store: Any = MemoryStorage()
            m = Manager(self.store, ManualClock(1_700_000_000))
            self.state: Any = ClientState(m, ServerStats(0.0), "w")  # type: ignore[call-arg]
            self.dispatch: Callable[[Any, bytes], Any] = dispatch
            return
        self.store = SQLiteStorage(path) if storage == "sqlite" else MemoryStorage()
        options: dict[str, Any] = {"extensions": list(extensions)} if extensions else {}
        m = Manager(self.store, ManualClock(1_700_000_000), **options)
        self.state = ClientState(m, ServerStats(0.0), PeriodicTasks(m), "w")
        self.dispatch = dispatch

    def warm_up(self) -> None:
        """Caches, the once-per-second time formats: 2,000 jobs pushed, fetched and acked
        through a queue of their own."""
        for i in range(2000):
            self.dispatch(
                self.state, b'PUSH {"jid":"warm-%08d","jobtype":"Bench","args":[],"queue":"w"}' % i
            )
        self.fetch_acks(b"w", 2000)

    def pushes(
        self,
        lines: list[bytes],
        commit: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> tuple[float, bytes]:
        """Seconds ``clock`` counts to dispatch every line (``commit``: each committed alone,
        as for a lone client), and the last reply."""
        dispatch, state, store = self.dispatch, self.state, self.store
        reply = b""
        start = clock()
        for line in lines:
            reply = dispatch(state, line)
            if commit:
                store.flush()
        return clock() - start, reply

    def fetch_acks(
        self,
        queue: bytes,
        n: int,
        commit: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> float:
        """Seconds ``clock`` counts to FETCH and ACK ``n`` jobs of ``queue``."""
        dispatch, state, store = self.dispatch, self.state, self.store
        fetch = b"FETCH " + queue
        start = clock()
        for _ in range(n):
            dispatch(state, fetch)
            res = state.fetched
            state.fetched = None
            assert res is not None, "the queue ran dry"
            if commit:
                store.flush()
            dispatch(state, b'ACK {"jid":"' + res.jid.encode() + b'"}')
            if commit:
                store.flush()
        return clock() - start


def best_of(
    rounds: int, children: dict[str, tuple[list[str], str | None]]
) -> dict[str, dict[str, float]]:
    """Run each child command (``{variant: (argv, PYTHONPATH or None)}``, each printing a
    JSON object of figures) ``rounds`` times, the variants taking turns; the lowest of each
    figure: what other processes add to a run only ever raises it."""
    best: dict[str, dict[str, float]] = {variant: {} for variant in children}
    for _ in range(rounds):
        for variant, (argv, pythonpath) in children.items():
            env = dict(os.environ)
            if pythonpath:
                env["PYTHONPATH"] = pythonpath
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            for name, value in json.loads(done.stdout).items():
                best[variant][name] = min(best[variant].get(name, value), value)
    return best

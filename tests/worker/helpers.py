"""Helpers shared by the worker and CLI tests."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.server.blocking import parked
from tests.servers import FETCH_BLOCK

import werk
from werk.server import EmbeddedServer, ManualClock

ROOT = Path(__file__).resolve().parents[2]

WERK = [sys.executable, "-m", "werk"]


def wait_until(cond: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``cond`` until true; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or cond}")
        time.sleep(0.01)


def subprocess_env(url: str, **extra: str) -> dict[str, str]:
    """Environment for a child ``python -m werk``: this checkout importable, FAKTORY_URL set."""
    env = dict(os.environ)
    parts = [str(ROOT / "src"), str(ROOT)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["FAKTORY_URL"] = url
    env.update(extra)
    return env


def end_parked_fetches(srv: EmbeddedServer) -> None:
    """On a manual clock: move time by one FETCH block if a FETCH is parked, else not at all.

    Time moving for nothing would also run the 2 s handshake deadline of a connection just
    opened (a stopping worker's last reports go on a new one) before it could say HELLO.
    """
    if parked(srv):
        srv.advance(FETCH_BLOCK)


@contextlib.contextmanager
def running(worker: werk.Worker, srv: EmbeddedServer) -> Iterator[werk.Worker]:
    """Run ``worker`` in the background; stop it on exit, nudging a manual clock.

    On a server with a manual clock a blocked FETCH only ends when time moves, so while
    the worker stops, time moves by one FETCH block every few milliseconds while one is
    parked.
    """
    worker.start()
    try:
        yield worker
    finally:
        worker.terminate()
        deadline = time.monotonic() + 30
        while not worker.wait(0.02):
            if isinstance(srv.clock, ManualClock):
                end_parked_fetches(srv)
            if time.monotonic() > deadline:
                pytest.fail("worker did not stop within 30 s")

"""Blocked FETCHes on a manual clock: a FETCH that finds nothing waits ``fetch_timeout``
seconds of the server's clock, so a test parks it, then moves the clock."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.server.rawclient import Raw

from werk.server import EmbeddedServer


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll until ``check()`` (each check runs on the server's loop through ``srv.call``)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def parked(srv: EmbeddedServer) -> int:
    """How many FETCHes are blocked."""
    return srv.call(lambda: len(srv.manager.waiting))


def park_fetch(srv: EmbeddedServer, c: Raw, *queues: str) -> None:
    """Send a FETCH that finds nothing and wait until the server parked it."""
    before = parked(srv)
    c.send(("FETCH " + " ".join(queues or ("default",)) + "\r\n").encode())
    wait_until(lambda: parked(srv) > before, "the FETCH is parked")


def fetch_nothing(srv: EmbeddedServer, c: Raw, *queues: str) -> object:
    """A FETCH that blocks, answered once the manual clock passed its timeout."""
    park_fetch(srv, c, *queues)
    srv.advance(srv.server.config.fetch_timeout)
    return c.read()

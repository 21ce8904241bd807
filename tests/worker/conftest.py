"""Fixtures for the worker tests: a real embedded server on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.worker.helpers import FETCH_BLOCK

from werk.server import EmbeddedServer, ManualClock


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    """An embedded server (memory storage, real clock)."""
    with EmbeddedServer(fetch_timeout=FETCH_BLOCK) as srv:
        yield srv


@pytest.fixture
def clock_server() -> Iterator[EmbeddedServer]:
    """An embedded server whose time only moves with ``srv.advance(seconds)``."""
    with EmbeddedServer(clock=ManualClock(1_700_000_000), fetch_timeout=FETCH_BLOCK) as srv:
        yield srv

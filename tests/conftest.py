"""Shared fixtures: a real werk server on a free port, for every part's end-to-end tests.

Fixtures (each test gets a fresh server, memory storage, in a background thread):

* ``faktory_server``: no password. ``.url`` (``tcp://127.0.0.1:PORT``), ``.host``,
  ``.port``, ``.password`` (None), ``.info()`` (queue/set sizes, counters), ``.call(fn)``
  (run ``fn`` on the server's loop), ``.manager``.
* ``faktory_server_password``: the same with ``.password == "test-password"``;
  ``.url_with_password`` is ``tcp://:test-password@127.0.0.1:PORT``.
* ``manual_server``: time stands still (a :class:`werk.server.ManualClock`): call
  ``.advance(seconds)`` to run what came due (retries, reservation expiry, heartbeats,
  FETCH and handshake deadlines) without sleeping.

Example::

    def test_push(faktory_server):
        with werk.Client(faktory_server.url) as client:
            client.push("Resize", 1)
        assert faktory_server.info()["queues"] == {"default": 1}

Set ``WERK_TEST_FETCH_TIMEOUT`` to shorten the server's 2 s FETCH wait in a quick local run
(the default keeps the real server's 2 s).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# "from tests.transcripts import load" works however pytest is started.
_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from werk.server import EmbeddedServer, ManualClock  # noqa: E402

TEST_PASSWORD = "test-password"


def _options() -> dict[str, float]:
    timeout = os.environ.get("WERK_TEST_FETCH_TIMEOUT")
    return {"fetch_timeout": float(timeout)} if timeout else {}


@pytest.fixture
def faktory_server() -> Iterator[EmbeddedServer]:
    """A fresh werk server (memory storage, no password) on a free port."""
    with EmbeddedServer(**_options()) as srv:  # type: ignore[arg-type]
        yield srv


@pytest.fixture
def faktory_server_password() -> Iterator[EmbeddedServer]:
    """A fresh werk server that requires ``TEST_PASSWORD`` ("test-password")."""
    with EmbeddedServer(password=TEST_PASSWORD, **_options()) as srv:  # type: ignore[arg-type]
        yield srv


@pytest.fixture
def manual_server() -> Iterator[EmbeddedServer]:
    """A fresh werk server on a manual clock: ``srv.advance(seconds)`` moves time."""
    with EmbeddedServer(clock=ManualClock(1_800_000_000.0)) as srv:
        yield srv

"""pytest fixtures for your own test suite: a real Faktory-compatible server on a free port.

werk registers this module as a pytest plugin, so once werk is installed these fixtures are
available in every test, with nothing to import. Each test gets a fresh server (memory
storage, a background thread, 127.0.0.1 and a free port): your code talks real TCP to it,
exactly as it will to Faktory in production.

* ``faktory_server``: no password. ``.url`` (``tcp://127.0.0.1:PORT``), ``.host``,
  ``.port``, ``.info()`` (queue and set sizes, counters), ``.manager``.
* ``faktory_server_password``: requires ``.password`` (``"test-password"``);
  ``.url_with_password`` is ``tcp://:test-password@127.0.0.1:PORT``.
* ``manual_server``: time stands still (at :data:`MANUAL_EPOCH` until moved);
  ``.advance(seconds)`` runs whatever came due (scheduled jobs, retries, reservation
  expiry, heartbeat expiry) without sleeping.
* ``faktory_url``: a ``faktory_server`` whose URL is also in ``FAKTORY_URL`` for the test,
  so code that builds its own ``werk.Client()`` finds it.

Example::

    def test_signup_sends_a_welcome_mail(faktory_server):
        signup("ann@example.com", faktory_url=faktory_server.url)
        assert faktory_server.info()["queues"] == {"mail": 1}

    def test_failed_job_is_retried_later(manual_server):
        ...
        manual_server.advance(60)   # the retry is due: back in its queue

Set ``WERK_TEST_FETCH_TIMEOUT`` (seconds) to shorten the server's 2 s wait on an empty
FETCH in quick local runs; by default it behaves like the real server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from werk.server import EmbeddedServer, ManualClock

__all__ = [
    "MANUAL_EPOCH",
    "TEST_PASSWORD",
    "faktory_server",
    "faktory_server_password",
    "faktory_url",
    "manual_server",
]

TEST_PASSWORD = "test-password"
# Where manual_server's clock starts (Unix seconds): fixed, so manual-clock tests are
# repeatable, and a multiple of 60, so periodic ticks fall on round numbers.
MANUAL_EPOCH = 1_800_000_000.0


def _options() -> dict[str, Any]:
    timeout = os.environ.get("WERK_TEST_FETCH_TIMEOUT")
    return {"fetch_timeout": float(timeout)} if timeout else {}


@pytest.fixture
def faktory_server() -> Iterator[EmbeddedServer]:
    """A fresh werk server (memory storage, no password) on a free port."""
    with EmbeddedServer(**_options()) as srv:
        yield srv


@pytest.fixture
def faktory_server_password() -> Iterator[EmbeddedServer]:
    """A fresh werk server that requires the password ``TEST_PASSWORD``."""
    with EmbeddedServer(password=TEST_PASSWORD, **_options()) as srv:
        yield srv


@pytest.fixture
def manual_server() -> Iterator[EmbeddedServer]:
    """A fresh werk server on a manual clock: ``srv.advance(seconds)`` moves time."""
    with EmbeddedServer(clock=ManualClock(MANUAL_EPOCH), **_options()) as srv:
        yield srv


@pytest.fixture
def faktory_url(faktory_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of a fresh ``faktory_server``, also set as ``FAKTORY_URL`` for the test."""
    monkeypatch.setenv("FAKTORY_URL", faktory_server.url)
    monkeypatch.delenv("FAKTORY_PROVIDER", raising=False)
    yield faktory_server.url

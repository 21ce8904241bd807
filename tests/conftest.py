"""The one way to get a server in werk's tests (helpers in ``tests/servers.py``).

* ``make_server(storage=..., password=..., clock=..., **options)``: start an
  :class:`~werk.server.EmbeddedServer` (memory storage, free port); every server it started
  is stopped when the test ends. For a manual clock pass ``clock=ManualClock(MANUAL_EPOCH)``.
* ``server``: ``make_server(fetch_timeout=FETCH_BLOCK)``, for workers and the CLI (a
  stopping worker waits out its blocked FETCH).
* ``clock_server``: the same on a manual clock at ``MANUAL_EPOCH``.
* ``tls_cert``: a self-signed certificate for ``localhost`` (``.cert``, ``.key``).

``faktory_server``, ``faktory_server_password``, ``manual_server`` and ``faktory_url``
come from werk's public pytest plugin, :mod:`werk.testing`, the same one users get.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.servers import FETCH_BLOCK, MANUAL_EPOCH, ServerFactory, TLSFiles, self_signed

from werk.server import EmbeddedServer, ManualClock


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start servers with ``make_server(**options)``; all are stopped at teardown."""
    factory = ServerFactory()
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def server(make_server: ServerFactory) -> EmbeddedServer:
    """A memory server whose empty FETCH blocks ``FETCH_BLOCK`` seconds (real clock)."""
    return make_server(fetch_timeout=FETCH_BLOCK)


@pytest.fixture
def clock_server(make_server: ServerFactory) -> EmbeddedServer:
    """Like ``server``, but time only moves with ``srv.advance(seconds)``."""
    return make_server(clock=ManualClock(MANUAL_EPOCH), fetch_timeout=FETCH_BLOCK)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A self-signed certificate valid for the name ``localhost`` only (not 127.0.0.1)."""
    return self_signed(tmp_path_factory.mktemp("tls"))

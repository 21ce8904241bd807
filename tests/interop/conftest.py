"""The fixture every interop test shares: werk's server, with and without a password."""

from __future__ import annotations

import pytest
from tests.servers import ServerFactory

from werk.server import EmbeddedServer
from werk.testing import TEST_PASSWORD


@pytest.fixture(params=["no-password", "password"])
def interop_server(request: pytest.FixtureRequest, make_server: ServerFactory) -> EmbeddedServer:
    """The server under test, once open and once behind ``TEST_PASSWORD``; clients get
    ``.url_with_password`` (the plain URL when there is no password)."""
    return make_server(password=TEST_PASSWORD if request.param == "password" else None)

"""The fixture every interop test shares: werk's server, with and without a password."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from werk.server import EmbeddedServer


@pytest.fixture(params=["no-password", "password"])
def server(
    request: pytest.FixtureRequest,
    faktory_server: EmbeddedServer,
    faktory_server_password: EmbeddedServer,
) -> Iterator[tuple[EmbeddedServer, str]]:
    """The server under test and the URL the client gets (password in it when required)."""
    if request.param == "password":
        yield faktory_server_password, faktory_server_password.url_with_password
    else:
        yield faktory_server, faktory_server.url

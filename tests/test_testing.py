"""werk's pytest plugin: the fixtures users get in their own test suites."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

import werk
from werk.server import EmbeddedServer


def test_the_plugin_is_registered_with_pytest() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("werk") == "werk.testing"


def test_faktory_url_is_what_a_default_client_finds(faktory_url: str) -> None:
    with werk.Client() as client:  # no URL given: FAKTORY_URL
        jid = client.push("Ping")
        job = client.fetch("default")
    assert job is not None and job.jid == jid
    assert faktory_url.startswith("tcp://127.0.0.1:")


def test_password_fixture_refuses_a_client_without_it(
    faktory_server_password: EmbeddedServer,
) -> None:
    with pytest.raises(werk.AuthenticationError):
        werk.Client(faktory_server_password.url).info()
    with werk.Client(faktory_server_password.url_with_password) as client:
        assert client.info()["server"]["description"] == "Faktory"


def test_manual_server_runs_due_work_when_advanced(manual_server: EmbeddedServer) -> None:
    from datetime import datetime, timezone

    # The server's clock stands still at its own time, so "in five minutes" is by that clock.
    later = datetime.fromtimestamp(manual_server.manager.clock.now() + 300, timezone.utc)
    with werk.Client(manual_server.url) as client:
        client.push("Later", at=later)
        assert manual_server.info()["queues"].get("default", 0) == 0
        manual_server.advance(301)
        assert manual_server.info()["queues"]["default"] == 1

"""Every recorded real-Faktory scenario, replayed against werk's server (see
``server_conformance.py`` for the clock alignment, normalisation and the documented
exceptions)."""

from __future__ import annotations

import pytest
from tests.server.server_conformance import adjusted, replay
from tests.servers import ServerFactory
from tests.transcripts import SCENARIOS


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_replays_identically(name: str, make_server: ServerFactory) -> None:
    compared = replay(name, make_server)
    # A replay that compared nothing would prove nothing.
    assert compared >= sum(1 for e in adjusted(name) if e.kind in ("recv", "eof"))


def test_every_scenario_is_covered() -> None:
    assert len(SCENARIOS) >= 22

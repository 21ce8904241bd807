"""Every recorded real-Faktory scenario, replayed against werk's server (see
``server_conformance.py`` for the clock alignment, normalisation and the documented
exceptions)."""

from __future__ import annotations

import pytest
from tests.server.server_conformance import adjusted, replay
from tests.transcripts import TRANSCRIPTS, names

pytestmark = pytest.mark.skipif(
    not TRANSCRIPTS.is_dir(), reason="shared transcripts are not beside the repository"
)


@pytest.mark.parametrize("name", names() if TRANSCRIPTS.is_dir() else [])
def test_scenario_replays_identically(name: str) -> None:
    compared = replay(name)
    # A replay that compared nothing would prove nothing.
    assert compared >= sum(1 for e in adjusted(name) if e.kind in ("recv", "eof"))


def test_every_scenario_is_covered() -> None:
    assert len(names()) >= 22

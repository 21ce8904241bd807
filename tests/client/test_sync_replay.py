"""Every recorded connection, replayed through werk.Client on a real socket."""

from __future__ import annotations

import os
from typing import Any

import pytest
from tests.client.peer import ScriptedPeer
from tests.client.replay import Plan, check_outcome, plan
from tests.transcripts import load, names

import werk


def _plans() -> list[Plan]:
    found = []
    for name in names():
        for conn in dict.fromkeys(e.conn for e in load(name)):
            p = plan(name, conn)
            if p is not None:
                found.append(p)
    return found


PLANS = _plans()


def test_the_replay_covers_the_recordings() -> None:
    # Guard against a replay that silently skips everything.
    calls = [c for p in PLANS for c in p.calls]
    assert len(PLANS) >= 25
    assert len(calls) >= 250
    # Most recorded jobs have no retry; werk adds "retry":25 and must still replay them.
    pushes = [c for c in calls if c.method == "push"]
    assert len(pushes) >= 50
    assert sum(b'"retry":25' in c.line for c in pushes) >= 40
    methods = {c.method for c in calls}
    assert methods >= {
        "push",
        "push_bulk",
        "fetch",
        "ack",
        "fail",
        "beat",
        "info",
        "flush",
        "mutate",
        "queue_pause",
        "queue_resume",
        "queue_remove",
        "queue_latency",
        "track_get",
    }


@pytest.mark.parametrize("p", PLANS, ids=lambda p: f"{p.name}-{p.conn}")
def test_replay(p: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getpid", lambda: p.hello["pid"])
    with ScriptedPeer([p.script()]) as peer:
        client = werk.Client(peer.url, **p.client_kwargs())
        client.connect()
        for call in p.calls:
            value: Any = None
            error: BaseException | None = None
            try:
                value = getattr(client, call.method)(*call.args, **call.kwargs)
            except werk.FaktoryError as exc:
                error = exc
            check_outcome(call, value, error)
        if p.ends:
            client.close()
        else:
            client.abort()

"""Expiring jobs (docs/enterprise.md section 6) over TCP on the manual clock: ``expires_in``
rewritten at PUSH, expiry at the second, the discard at FETCH (logged, counted, never
handed out, the same FETCH goes on), bad values, and the unique lock an expiry releases."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from tests.server.blocking import fetch_nothing
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.resp import ErrorReply
from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock
from werk.server._expiring import ExpiringJobs

T0 = MANUAL_EPOCH


@pytest.fixture
def srv(make_server: ServerFactory) -> EmbeddedServer:
    return make_server(clock=ManualClock(T0), fetch_timeout=0.2)


def expired_count(srv: EmbeddedServer) -> int:
    ext = next(e for e in srv.manager.hooks.all if isinstance(e, ExpiringJobs))  # type: ignore[union-attr]
    return srv.call(lambda: ext.expired)


def test_expires_in_becomes_a_stored_expires_at(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-in-000001", custom={"expires_in": 90}) == "OK"
        # Both given: expires_at wins.
        at = "2030-01-01T00:00:00+02:00"
        assert c.push("jid-in-000002", custom={"expires_in": 90, "expires_at": at}) == "OK"
        first, second = c.fetch(), c.fetch()
    assert first is not None and second is not None
    assert first["custom"] == {"expires_in": 90, "expires_at": epoch_to_string(T0 + 90)}
    assert second["custom"] == {"expires_in": 90, "expires_at": at}


def test_a_job_expires_at_the_second(srv: EmbeddedServer, caplog: pytest.LogCaptureFixture) -> None:
    with Raw(srv) as c:
        assert c.push("jid-exp-00001", custom={"expires_in": 10}) == "OK"
        assert c.push("jid-exp-00002", custom={"expires_at": epoch_to_string(T0 + 10)}) == "OK"
        assert c.push("jid-exp-00003", custom={"expires_in": 11}) == "OK"
        assert c.push("jid-plain-001") == "OK"
        srv.advance(9.999)
        job = c.fetch()
        assert job is not None and job["jid"] == "jid-exp-00001"  # not yet
        srv.advance(0.001)  # expires_at <= now: expired
        with caplog.at_level(logging.INFO, logger="werk.server"):
            job = c.fetch()  # 00002 is dropped, the same FETCH takes the next job
        assert job is not None and job["jid"] == "jid-exp-00003"
        assert "JID jid-exp-00002: job expired" in caplog.text
        job = c.fetch()
        assert job is not None and job["jid"] == "jid-plain-001"
        assert fetch_nothing(srv, c) is None
    assert expired_count(srv) == 1
    assert srv.info()["queues"] == {"default": 0}


def test_an_expired_job_is_never_handed_out(srv: EmbeddedServer) -> None:
    past = "2001-01-01T00:00:00Z"
    with Raw(srv) as c:
        assert c.push("jid-past-0001", custom={"expires_at": past}) == "OK"  # accepted
        assert c.push("jid-past-0002", queue="other", custom={"expires_at": past}) == "OK"
        assert fetch_nothing(srv, c, "default", "other") is None
    assert expired_count(srv) == 2
    assert srv.info()["queues"] == {"default": 0, "other": 0}


def test_the_expired_count_survives_a_restart(make_server: ServerFactory, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock, fetch_timeout=0.2)
    with Raw(srv) as c:
        assert c.push("jid-count-001", custom={"expires_in": 1}) == "OK"
        srv.advance(1)
        assert fetch_nothing(srv, c) is None
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    assert expired_count(srv) == 1


def test_an_expiry_releases_the_unique_lock(srv: EmbeddedServer) -> None:
    custom = {"expires_in": 5, "unique_for": 3600}
    with Raw(srv) as c:
        assert c.push("jid-both-0001", custom=custom) == "OK"
        assert c.push("jid-both-0002", custom=custom) == ErrorReply("NOTUNIQUE", "Job not unique")
        srv.advance(5)
        assert fetch_nothing(srv, c) is None
        assert c.push("jid-both-0003", custom=custom) == "OK"


@pytest.mark.parametrize(
    ("custom", "error"),
    [
        ({"expires_in": 0}, "invalid expires_in: must be a number of seconds greater than 0"),
        ({"expires_in": "60"}, "invalid expires_in: must be a number of seconds greater than 0"),
        ({"expires_in": False}, "invalid expires_in: must be a number of seconds greater than 0"),
        ({"expires_in": 1e300}, "invalid expires_in: must be a number of seconds greater than 0"),
        (
            {"expires_at": "tomorrow"},
            'invalid timestamp for \'expires_at\': "tomorrow": parsing time "tomorrow" '
            'as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "tomorrow" as "2006"',
        ),
        ({"expires_at": 17}, "invalid timestamp for 'expires_at': 17: not a string"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_stored(
    srv: EmbeddedServer, custom: dict[str, object], error: str
) -> None:
    with Raw(srv) as c:
        assert c.push("jid-bad-value1", custom={**custom, "unique_for": 60}) == ErrorReply(
            "ERR", error
        )
        job = {"jid": "jid-bad-value2", "jobtype": "T", "args": [], "custom": custom}
        assert json.loads(c.cmd("PUSHB " + json.dumps([job]))) == {"jid-bad-value2": error}
        # No lock was taken by the refused push.
        assert c.push("jid-good-value", custom={"unique_for": 60}) == "OK"
    assert srv.info()["queues"] == {"default": 1}

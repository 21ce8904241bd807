"""Job tracking on the wire (docs/enterprise.md section 4): TRACK SET and TRACK GET, the
states a tracked job goes through, reservations extended by ``reserve_until``, and how
long records stay, against the embedded server with a manual clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.server.batchkit import ack, callback, dumps, fail, new_batch, take
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH

from werk._protocol.resp import ErrorReply
from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock
from werk.server._features import tracking_of
from werk.server._manager import Manager
from werk.server._storage import MemoryStorage
from werk.server._tracking import Tracking

T0 = MANUAL_EPOCH


def get(c: Raw, jid: str) -> dict[str, Any]:
    reply = c.cmd(f"TRACK GET {jid}")
    assert isinstance(reply, bytes), reply
    data: dict[str, Any] = json.loads(reply)
    return data


def state(c: Raw, jid: str) -> str:
    return str(get(c, jid)["state"])


def track_set(c: Raw, **body: Any) -> Any:
    return c.cmd("TRACK SET " + dumps(body))


def test_an_unknown_jid_reads_exactly_as_enterprise_answers(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        c.send(b"TRACK GET f7APFzrS2RZi9eaA\r\n")
        assert c.sock.recv(200) == (
            b'$60\r\n{"jid":"f7APFzrS2RZi9eaA","state":"unknown","updated_at":""}\r\n'
        )
        c.push("untracked-01")  # a job without custom.track has no record
        assert state(c, "untracked-01") == "unknown"
        c.push("untracked-02", custom={"track": 0})
        assert state(c, "untracked-02") == "unknown"


def test_a_tracked_job_from_push_to_success(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        assert c.push("tracked-0001", custom={"track": 1}) == "OK"
        assert get(c, "tracked-0001") == {
            "jid": "tracked-0001",
            "state": "enqueued",
            "updated_at": epoch_to_string(T0),
        }
        clock_server.advance(1.5)
        take(c)
        assert state(c, "tracked-0001") == "working"
        assert track_set(c, jid="tracked-0001", percent=12, desc="Calculating...") == "OK"
        raw = c.cmd("TRACK GET tracked-0001")
        assert raw == (
            b'{"jid":"tracked-0001","desc":"Calculating...","state":"working",'
            b'"updated_at":"' + epoch_to_string(T0 + 1.5).encode() + b'","percent":12}'
        )
        # Each SET replaces both values: absent or null clears one.
        assert track_set(c, jid="tracked-0001", percent=50, desc=None) == "OK"
        assert get(c, "tracked-0001")["percent"] == 50 and "desc" not in get(c, "tracked-0001")
        clock_server.advance(2)
        ack(c, "tracked-0001")
        assert get(c, "tracked-0001") == {
            "jid": "tracked-0001",
            "state": "success",
            "updated_at": epoch_to_string(T0 + 3.5),
            "percent": 50,
        }
        # Accepted after success too (clients report 100 then).
        assert track_set(c, jid="tracked-0001", percent=100, desc="done") == "OK"
        assert get(c, "tracked-0001")["percent"] == 100


@pytest.mark.parametrize("value", [1, 2, True, 0.5])
def test_track_opts_in_with_any_number_but_zero_or_true(
    clock_server: EmbeddedServer, value: object
) -> None:
    with Raw(clock_server) as c:
        c.push("tracked-0002", custom={"track": value})
        assert state(c, "tracked-0002") == "enqueued"


def test_failures_retries_and_death(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        c.push("tracked-fail", retry=1, custom={"track": 1})
        fail(c, take(c)["jid"])
        assert state(c, "tracked-fail") == "failed"
        clock_server.advance(3600)
        take(c)
        assert state(c, "tracked-fail") == "working"  # again, at the retry's fetch
        fail(c, "tracked-fail")
        assert state(c, "tracked-fail") == "dead"
        c.push("tracked-once", retry=0, custom={"track": 1})
        fail(c, take(c)["jid"])
        assert state(c, "tracked-once") == "failed"


def test_an_expired_reservation_reads_failed(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        c.push("tracked-slow", reserve_for=60, custom={"track": 1})
        take(c)
        clock_server.advance(120)
        assert state(c, "tracked-slow") == "failed"
        assert clock_server.info()["retries"] == 1


def test_a_scheduled_job_reads_enqueued(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        at = epoch_to_string(T0 + 600)
        c.push("tracked-later", at=at, custom={"track": 1})
        assert state(c, "tracked-later") == "enqueued"


def test_set_before_the_fetch_and_for_untracked_jobs(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        c.push("tracked-early", custom={"track": 1})
        assert track_set(c, jid="tracked-early", percent=5, desc="queued") == "OK"
        assert get(c, "tracked-early") == {
            "jid": "tracked-early",
            "desc": "queued",
            "state": "enqueued",
            "updated_at": epoch_to_string(T0),
            "percent": 5,
        }
        take(c)
        assert get(c, "tracked-early")["percent"] == 5  # kept while the state moves
        # An untracked or unknown jid: the values are stored, the state stays unknown.
        assert track_set(c, jid="never-pushed", percent=7) == "OK"
        assert get(c, "never-pushed") == {
            "jid": "never-pushed",
            "state": "unknown",
            "updated_at": epoch_to_string(T0),
            "percent": 7,
        }


def test_a_callback_can_be_tracked(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, success=callback("Done", jid="tracked-callback", custom={"track": 1}))
        c.cmd(f"BATCH COMMIT {bid}")
        assert state(c, "tracked-callback") == "enqueued"
        ack(c, take(c, "callbacks")["jid"])
        assert state(c, "tracked-callback") == "success"


def test_reserve_until_extends_the_reservation(clock_server: EmbeddedServer) -> None:
    """The job is not handed out again while its extended reservation runs."""
    with Raw(clock_server) as c:
        c.push("long-runner1", reserve_for=60)  # tracking is not needed to extend
        take(c)
        until = epoch_to_string(T0 + 600)
        assert track_set(c, jid="long-runner1", percent=10, reserve_until=until) == "OK"
        clock_server.advance(300)  # well past the 60 s reservation and the reaper's period
        info = clock_server.info()  # neither back in its queue nor waiting for a retry
        assert (info["reserved"], info["queues"]["default"], info["retries"]) == (1, 0, 0)
        # Never shortened: an earlier time changes nothing.
        assert track_set(c, jid="long-runner1", reserve_until=epoch_to_string(T0 + 350)) == "OK"
        clock_server.advance(200)  # T0 + 500
        assert clock_server.info()["reserved"] == 1
        clock_server.advance(200)  # T0 + 700: past the extension
        assert clock_server.info()["reserved"] == 0
        assert clock_server.info()["retries"] == 1
        assert c.cmd('ACK {"jid":"long-runner1"}') == "OK"  # too late: nothing happens
        assert clock_server.info()["retries"] == 1


def test_reserve_until_is_capped_at_a_day_and_ignored_in_the_past(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        c.push("long-runner2", reserve_for=60)
        take(c)

        def expiry() -> float:
            return float(clock_server.manager.reservations["long-runner2"].score)

        before = clock_server.call(expiry)
        past = epoch_to_string(T0 - 10)
        assert track_set(c, jid="long-runner2", reserve_until=past) == "OK"
        assert clock_server.call(expiry) == before
        far = epoch_to_string(T0 + 3 * 86400)
        assert track_set(c, jid="long-runner2", reserve_until=far) == "OK"
        assert clock_server.call(expiry) == T0 + 86400
        # A job that is not reserved: +OK and nothing happens.
        assert track_set(c, jid="not-reserved", reserve_until=far) == "OK"


def test_finished_records_stay_readable_for_thirty_minutes(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        c.push("tracked-done", custom={"track": 1})
        c.push("tracked-wait", queue="later", custom={"track": 1})
        track_set(c, jid="set-only-01", percent=1)
        ack(c, take(c)["jid"])
        clock_server.advance(29 * 60)
        assert state(c, "tracked-done") == "success"
        assert get(c, "set-only-01")["percent"] == 1
        clock_server.advance(61)
        assert state(c, "tracked-done") == "unknown"
        assert get(c, "set-only-01") == {"jid": "set-only-01", "state": "unknown", "updated_at": ""}
        clock_server.advance(86400)
        assert state(c, "tracked-wait") == "enqueued"  # still in the system: kept


def test_a_later_set_keeps_a_finished_record_longer(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        c.push("tracked-kept", custom={"track": 1})
        ack(c, take(c)["jid"])
        clock_server.advance(20 * 60)
        track_set(c, jid="tracked-kept", percent=100)
        clock_server.advance(20 * 60)
        assert state(c, "tracked-kept") == "success"
        clock_server.advance(11 * 60)
        assert state(c, "tracked-kept") == "unknown"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("TRACK SET {", "invalid JSON: unexpected end of JSON input"),
        (
            "TRACK SET []",
            "invalid JSON: json: cannot unmarshal array into Go value of type client.JobTrack",
        ),
        (
            'TRACK SET {"jid":5}',
            "invalid JSON: json: cannot unmarshal number into Go struct "
            "field JobTrack.jid of type string",
        ),
        (
            'TRACK SET {"jid":"bad-input-1","desc":7}',
            "invalid JSON: json: cannot unmarshal "
            "number into Go struct field JobTrack.desc of type string",
        ),
        ('TRACK SET {"percent":5}', "missing JID"),
        ('TRACK SET {"jid":""}', "missing JID"),
        (
            'TRACK SET {"jid":"bad-input-1","percent":101}',
            "invalid percent: must be an integer from 0 to 100",
        ),
        (
            'TRACK SET {"jid":"bad-input-1","percent":-1}',
            "invalid percent: must be an integer from 0 to 100",
        ),
        (
            'TRACK SET {"jid":"bad-input-1","percent":"5"}',
            "invalid percent: must be an integer from 0 to 100",
        ),
        (
            'TRACK SET {"jid":"bad-input-1","percent":5.5}',
            "invalid percent: must be an integer from 0 to 100",
        ),
        (
            'TRACK SET {"jid":"bad-input-1","reserve_until":"soon"}',
            "invalid timestamp for "
            '\'reserve_until\': "soon": parsing time "soon" as '
            '"2006-01-02T15:04:05.999999999Z07:00": cannot parse "soon" as "2006"',
        ),
        ("TRACK GET", "missing JID"),
        ("TRACK GET ", "missing JID"),
        ("TRACK", "no such TRACK subcommand: "),
        ("TRACK del x", "no such TRACK subcommand: DEL"),
    ],
)
def test_bad_input_stores_nothing(clock_server: EmbeddedServer, line: str, error: str) -> None:
    with Raw(clock_server) as c:
        c.push("bad-input-1", custom={"track": 1})
        before = c.cmd("TRACK GET bad-input-1")
        clock_server.advance(5)
        assert c.cmd(line) == ErrorReply("ERR", error)
        assert c.cmd("TRACK GET bad-input-1") == before


def test_the_read_api(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        c.push("read-api-t1", custom={"track": 1})
        track_set(c, jid="read-api-t1", percent=40, desc="halfway")
    ext = tracking_of(clock_server.manager)
    assert ext is not None
    info = clock_server.call(ext.track_of, "read-api-t1")
    assert info is not None
    assert (info.state, info.percent, info.desc) == ("enqueued", 40, "halfway")
    assert info.updated_at == epoch_to_string(T0)
    assert clock_server.call(ext.track_of, "nobody-here") is None
    found = clock_server.call(ext.tracks_of, ["read-api-t1", "nobody-here"])
    assert list(found) == ["read-api-t1"]


def test_a_job_given_back_reads_enqueued_again() -> None:
    """A FETCH whose reply never reached its client (the connection died): the job goes
    back to its queue as if never fetched (the server's put_back, driven directly here)."""
    tracking = Tracking()
    m = Manager(MemoryStorage(), ManualClock(T0), extensions=[tracking])
    job = b'{"jid":"tracked-back","jobtype":"T","args":[],"custom":{"track":1}}'
    assert m.push_bytes(job) is None
    res = m.fetch(["default"], "w1")
    assert res is not None
    working = tracking.track_of("tracked-back")
    assert working is not None and working.state == "working"
    assert m.put_back(res)
    info = tracking.track_of("tracked-back")
    assert info is not None and info.state == "enqueued"


def test_values_set_before_the_push_are_kept(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        assert track_set(c, jid="tracked-preset", percent=3, desc="waiting") == "OK"
        assert state(c, "tracked-preset") == "unknown"
        c.push("tracked-preset", custom={"track": 1})
        assert get(c, "tracked-preset") == {
            "jid": "tracked-preset",
            "desc": "waiting",
            "state": "enqueued",
            "updated_at": epoch_to_string(T0),
            "percent": 3,
        }
        clock_server.advance(3600)  # no longer a SET-only record: it does not expire
        assert state(c, "tracked-preset") == "enqueued"

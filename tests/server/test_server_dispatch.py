"""The dispatcher on plain data: a line in, the reply value out, no socket, no event loop."""

from __future__ import annotations

import json

import pytest

from werk._protocol.resp import encode_bulk
from werk.server import ManualClock
from werk.server import _admin as admin
from werk.server._dispatch import CLOSE, ClientState, FetchWait, ServerStats, dispatch
from werk.server._manager import Manager
from werk.server._periodic import PeriodicTasks
from werk.server._storage import MemoryStorage
from werk.server._sweep import Sweep

T0 = 1_700_000_000


@pytest.fixture
def state() -> ClientState:
    m = Manager(MemoryStorage(), ManualClock(T0))
    return ClientState(m, ServerStats(T0), PeriodicTasks(m), wid="wid-dispatch")


def _push(state: ClientState, **fields: object) -> bytes:
    job = {"jid": "jid-00000001", "jobtype": "T", "args": [], **fields}
    reply = dispatch(state, b"PUSH " + json.dumps(job).encode())
    assert isinstance(reply, bytes)
    return reply


def test_push_then_fetch_hands_out_the_canonical_payload(state: ClientState) -> None:
    assert _push(state) == b"+OK\r\n"
    reply = dispatch(state, b"FETCH default")
    res = state.fetched
    assert res is not None and res.jid == "jid-00000001"
    assert reply == encode_bulk(res.payload)
    assert json.loads(res.payload)["queue"] == "default"
    assert dispatch(state, b'ACK {"jid":"jid-00000001"}') == b"+OK\r\n"
    assert state.manager.counters["processed"] == 1
    assert state.stats.commands == 3
    counted = {verb: n for verb, n in state.stats.verbs.items() if n}
    assert counted == {b"PUSH": 1, b"FETCH": 1, b"ACK": 1}


def test_a_bare_verb_that_needs_an_argument_is_an_internal_error(state: ClientState) -> None:
    for verb in (b"PUSH", b"PUSHB", b"ACK", b"FAIL", b"BEAT"):
        assert dispatch(state, verb) == b"-ERR internal error\r\n"
    assert state.stats.commands == 5  # known verbs count, as on the real server


def test_an_unknown_verb_is_named_and_not_counted(state: ClientState) -> None:
    assert dispatch(state, b"FOO bar") == b"-ERR unknown command FOO\r\n"
    assert state.stats.commands == 0
    assert b"FOO" not in state.stats.verbs  # a client cannot add series to /metrics


def test_a_field_of_the_wrong_type_is_go_s_error_and_nothing_is_stored(state: ClientState) -> None:
    reply = _push(state, queue=7)
    assert reply == (
        b"-ERR invalid JSON: json: cannot unmarshal number into Go struct field Job.queue"
        b" of type string\r\n"
    )
    assert state.manager.queue_sizes() == {}


def test_errors_quote_like_go(state: ClientState) -> None:
    # Go's %q: a control character is \x01, not JSON's \u0001.
    assert _push(state, queue="bad\x01queue") == (
        b'-ERR cannot get "bad\\x01queue" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z\r\n'
    )
    # The time package quotes its own way: bytes of non-ASCII characters as \xNN.
    assert (
        _push(state, at="bientôt")
        == (
            '-ERR invalid timestamp for \'at\': "bientôt": parsing time "bient\\xc3\\xb4t" as'
            ' "2006-01-02T15:04:05.999999999Z07:00": cannot parse "bient\\xc3\\xb4t" as "2006"\r\n'
        ).encode()
    )


def test_fetch_on_empty_queues_waits_on_the_unpaused_ones(state: ClientState) -> None:
    state.manager.push_bytes(b'{"jid":"jid-00000002","jobtype":"T","args":[],"queue":"p"}')
    admin.pause(state.manager, "p")
    reply = dispatch(state, b"FETCH p default")
    assert isinstance(reply, FetchWait) and reply.queues == ["default"]
    assert dispatch(state, b"FETCH") == b"-ERR must call fetch with at least one queue\r\n"


def test_fail_of_an_unknown_jid_and_beat_of_an_unknown_worker(state: ClientState) -> None:
    assert dispatch(state, b'FAIL {"jid":"jid-nobody-01"}') == (
        b"-ERR Job not found jid-nobody-01\r\n"
    )
    assert dispatch(state, b'BEAT {"wid":"wid-nobody"}') == b"-ERR unknown worker wid-nobody\r\n"
    assert dispatch(state, b"ACK [1]") == b"-ERR invalid ACK [1]\r\n"


def test_end_closes_and_mutate_becomes_a_sweep(state: ClientState) -> None:
    assert dispatch(state, b"END") is CLOSE
    _push(state, at="2099-01-01T00:00:00Z")
    reply = dispatch(state, b'MUTATE {"cmd":"kill","target":"scheduled","filter":{"regexp":"*"}}')
    assert isinstance(reply, Sweep)
    while not reply.step():
        pass
    assert len(state.manager.dead) == 1
    assert dispatch(state, b'MUTATE {"cmd":"nope","target":"dead"}') == (
        b"-ERR unknown mutate operation\r\n"
    )


def test_batch_and_track_say_they_need_faktory_enterprise(state: ClientState) -> None:
    assert dispatch(state, b"BATCH NEW {}") == (
        b"-ERR batch subsystem is only available in Faktory Enterprise\r\n"
    )
    assert dispatch(state, b"TRACK GET jid-1") == (
        b"-ERR tracking subsystem is only available in Faktory Enterprise\r\n"
    )


def test_info_reports_the_task_statistics(state: ClientState) -> None:
    reply = dispatch(state, b"INFO")
    assert isinstance(reply, bytes)
    info = json.loads(reply.split(b"\r\n", 1)[1])
    assert set(info["faktory"]["tasks"]) == {"Busy", "Dead", "Retries", "Scheduled", "Workers"}
    assert info["server"]["command_count"] == 1

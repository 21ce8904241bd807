"""Hostile and broken clients: each gets the real error or a close, the server stays up,
other clients are not slowed, and nothing stored is damaged."""

from __future__ import annotations

import contextlib
import logging
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH

from werk._protocol.command_lines import split_command
from werk._protocol.resp import ErrorReply
from werk.server import ManualClock


def test_oversized_line_gets_a_clear_error_and_a_close(make_server):
    srv = make_server(max_line=4096)
    with Raw(srv) as keeper, Raw(srv) as hog:
        assert keeper.push("jid-keep-00001") == "OK"
        hog.send(b"PUSH " + b"x" * 10_000)  # no newline, beyond the cap
        reply = hog.read()
        assert isinstance(reply, ErrorReply) and "longer than 4096 bytes" in reply.message
        assert hog.closed_by_server()
        # The other client and the stored job are untouched.
        assert keeper.fetch()["jid"] == "jid-keep-00001"


def test_a_line_just_under_the_cap_is_fine(make_server):
    with Raw(make_server(max_line=4096)) as c:
        pad = "y" * (4096 - 200)
        assert c.push("jid-big-000001", args=[pad]) == "OK"
        assert c.fetch()["args"] == [pad]


def test_silent_client_is_dropped_after_the_handshake_deadline(make_server):
    srv = make_server(clock=ManualClock(MANUAL_EPOCH))
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    assert sock.recv(100) == b'+HI {"v":2}\r\n'
    srv.advance(1.9)
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    srv.advance(0.2)
    sock.settimeout(5)
    assert sock.recv(1) == b""


def test_half_sent_line_is_never_executed(faktory_server):
    with Raw(faktory_server) as c:
        c.send(b'PUSH {"jid":"jid-half-00001","jobtype":"T","args":[]}')
    with Raw(faktory_server) as c:
        time.sleep(0.05)
        assert c.info()["faktory"]["total_enqueued"] == 0


def test_connection_limit_refuses_with_the_real_text(make_server):
    srv = make_server(max_connections=3)
    clients = [Raw(srv) for _ in range(3)]
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    sock.sendall(b"HELLO {}\r\n")
    data = b""
    while True:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    assert data == b'+HI {"v":2}\r\n+OK\r\n-ERR too many connections: 4\r\n'
    assert clients[0].push("jid-still-ok-1") == "OK"
    for c in clients:
        c.close()


@pytest.mark.slow
def test_thousand_idle_connections_do_not_slow_a_worker(faktory_server):
    idle = [Raw(faktory_server) for _ in range(1000)]
    try:
        with Raw(faktory_server) as c:
            start = time.monotonic()
            for i in range(200):
                assert c.push(f"jid-busy-{i:05d}") == "OK"
                assert c.fetch() is not None
            # Generous: this only fails if idle sockets cost per-command work.
            assert time.monotonic() - start < 10
            assert c.info()["server"]["connections"] == 1001
    finally:
        for c in idle:
            c.close()


def test_bad_utf8_and_json_are_answered_not_fatal(faktory_server):
    with Raw(faktory_server) as c:
        c.send(b"\xff\xfe\r\n")
        assert c.read() == ErrorReply("ERR", "unknown command \ufffd\ufffd")
        assert c.cmd(b'PUSH {"jid":"jid-badutf8-01","jobtype":"T","args":["\xff"]}') == "OK"
        assert c.fetch()["args"] == ["\ufffd"]
        assert c.cmd(b"PUSH {") == ErrorReply("ERR", "invalid JSON: unexpected end of JSON input")
        assert c.cmd(b"PUSH [1,2]").message.startswith("invalid JSON: json: cannot unmarshal")
        for verb in (b"PUSH", b"PUSHB", b"ACK", b"FAIL", b"BEAT", b"QUEUE", b"QUEUE PAUSE"):
            assert c.cmd(verb) == ErrorReply("ERR", "internal error")
        assert c.cmd(b"INFO") is not None


def test_raw_error_bytes_are_echoed_exactly(faktory_server):
    sock = socket.create_connection((faktory_server.host, faktory_server.port), timeout=5)
    sock.sendall(b"HELLO {}\r\n\xff\xfe\r\nINFO\rFOO\r\nINFO\x00\r\n")
    want = b'+HI {"v":2}\r\n+OK\r\n-ERR unknown command \xff\xfe\r\n'
    want += b"-ERR unknown command INFO\rFOO\r\n-ERR unknown command INFO\x00\r\n"
    data = b""
    while len(data) < len(want):
        data += sock.recv(4096)
    assert data == want
    sock.close()


_VERBS = [
    b"PUSH",
    b"PUSHB",
    b"FETCH",
    b"ACK",
    b"FAIL",
    b"BEAT",
    b"INFO",
    b"FLUSH",
    b"MUTATE",
    b"QUEUE",
    b"QUEUE PAUSE",
    b"QUEUE RESUME",
    b"QUEUE REMOVE",
    b"QUEUE LATENCY",
    b"BATCH",
    b"TRACK",
    b"HELLO",
]
_garbage = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))
_json_ish = st.sampled_from(
    [
        b"{}",
        b"[]",
        b"null",
        b'[{"jid":"jid-fuzz-000001","jobtype":"T","args":[]}]',
        b'{"jid":"jid-fuzz-000001","jobtype":"T","args":[],"queue":"\xff"}',
        b'{"cmd":"kill","target":"retries","filter":{"regexp":"*\xff","jids":["\xfe"]}}',
        b'{"cmd":"discard","target":"dead","filter":{"jobtype":"\xc3"}}',
        b'{"cmd":"requeue","target":"scheduled","filter":{"regexp":"[","jids":[1]}}',
        b'{"cmd":"clear","target":"nowhere"}',
        b'{"wid":"\xff","current_state":"\\u0000"}',
        b'{"jid":"\\ud800","errtype":"\xff","backtrace":["\xfe",null]}',
        b"default \xff\xfe *",
    ]
)
_line = st.one_of(
    _garbage,
    # Every verb, its argument valid, broken JSON, invalid UTF-8 or both.
    st.tuples(st.sampled_from(_VERBS), st.one_of(_json_ish, _garbage), _garbage).map(
        lambda t: t[0] + b" " + t[1] + t[2][:3]
    ),
    st.sampled_from(_VERBS),  # bare
    st.sampled_from([b"QUEUE PAUSE *", b"QUEUE REMOVE *", b"QUEUE LATENCY *", b"FLUSH"]),
)
_MAX_LINE = 1024


class _Failures(logging.Handler):
    """Collects what the server logged with a traceback: an exception it did not expect."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@settings(
    max_examples=80,
    deadline=None,
    # make_server is a factory: each example starts (and stops) a server of its own.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(lines=st.lists(_line, max_size=12), huge=st.sampled_from([0, 0, 0, _MAX_LINE + 1, 50_000]))
def test_nothing_a_client_sends_stops_the_server(make_server, lines, huge):
    if huge:  # the cap is per line, even after well-formed pipelined ones
        lines = [*lines, b"PUSH " + b"\xff" * huge]
    failures = _Failures()
    logging.getLogger("werk").addHandler(failures)
    try:
        srv = make_server(fetch_timeout=0.01, max_line=_MAX_LINE)
        try:
            # All pipelined in one write, then END: one reply per line until the close.
            with Raw(srv) as c:
                c.send(b"".join(line + b"\r\n" for line in lines) + b"END\r\n")
                replies = []
                with contextlib.suppress(EOFError):
                    while True:
                        replies.append(c.read())
            expected = 0
            for line in lines:
                if len(line) > _MAX_LINE or split_command(line)[0] == b"END":
                    expected += len(line) > _MAX_LINE  # its error, then the close
                    break
                expected += 1
            assert len(replies) == expected, (lines, replies)
            with Raw(srv) as c:
                c.cmd(b"QUEUE RESUME *")
                # A queue of its own: a fuzzed PUSH or PUSHB may have left a job in default.
                assert c.push("jid-survivor-1", queue="survivor") == "OK"
                assert c.fetch("survivor")["jid"] == "jid-survivor-1"
        finally:
            srv.stop()
        assert failures.records == [], [r.getMessage() for r in failures.records]
    finally:
        logging.getLogger("werk").removeHandler(failures)

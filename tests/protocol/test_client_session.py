"""The client session, byte by byte: no sockets, only what a server sends and what the
session makes of it.

What must not be lost: every reply reaches the command it answers, in order, however the
bytes are split; a command that will get no reply is handed back (its token), never
forgotten; a refused admission says that nothing was run.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.client.replay import PASSWORD, Plan, plan
from tests.transcripts import load, names

from werk._errors import (
    AuthenticationError,
    ConnectError,
    ConnectionClosedError,
    LocalProtocolError,
    RemoteProtocolError,
    ShutdownInProgressError,
)
from werk._protocol.handshake import password_hash
from werk._protocol.resp import (
    NEED_DATA,
    ErrorReply,
    ReplyReader,
    encode_bulk,
    encode_error,
    encode_simple,
)
from werk._protocol.session import ClientSession, closes_connection

WHERE = "tcp://faktory:7419"


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def drain(session: ClientSession[Any]) -> list[tuple[Any, Any]]:
    out = []
    while (item := session.next_reply()) is not NEED_DATA:
        out.append(item)
    return out


def opened(**hello: Any) -> ClientSession[Any]:
    """A session past ``+HI {"v":2}`` / HELLO / ``+OK``."""
    session: ClientSession[Any] = ClientSession(WHERE, hostname="h", pid=7, **hello)
    session.expect("greeting")
    session.receive_data(b'+HI {"v":2}\r\n')
    [(_, greeting)] = drain(session)
    session.send(session.hello(greeting), "hello")
    _, ok = session.feed_and_read(b"+OK\r\n")  # type: ignore[misc]
    session.welcome(ok)
    assert session.ready
    return session


# -- the handshake ----------------------------------------------------------------------


def test_hello_without_a_password_has_the_reference_key_order() -> None:
    session: ClientSession[str] = ClientSession(
        WHERE, hostname="host1", pid=4242, wid="w1", labels=["python"]
    )
    session.expect("greeting")
    assert session.feed_and_read(b'+HI {"v":2}\r\n') == ("greeting", 'HI {"v":2}')
    line = session.hello('HI {"v":2}')
    assert line == (
        b'HELLO {"hostname":"host1","wid":"w1","pid":4242,"labels":["python"],"v":2}\r\n'
    )
    assert not session.ready
    session.send(line, "hello")
    assert session.feed_and_read(b"+OK\r\n") == ("hello", "OK")
    session.welcome("OK")
    assert session.ready and not session.pending


@pytest.mark.parametrize("conn", ["c1", "c2"])
def test_recorded_password_handshake(conn: str) -> None:
    """The real server's salted greeting, answered with the recorded hash, accepted."""
    entries = [e for e in load("02_handshake_password") if e.conn == conn]
    greeting, ok = [e.data for e in entries if e.kind == "recv"][:2]
    recorded = json.loads(next(e.data for e in entries if e.kind == "send")[6:])
    session: ClientSession[None] = ClientSession(
        WHERE,
        hostname=recorded["hostname"],
        pid=recorded["pid"],
        wid=recorded.get("wid"),
        labels=recorded.get("labels") or (),
        password=PASSWORD,
    )
    session.expect(None)
    session.receive_data(greeting)
    [(_, hi)] = drain(session)
    line = session.hello(hi)
    assert json.loads(line[6:]) == recorded
    assert recorded["pwdhash"] == password_hash(
        PASSWORD, json.loads(hi[3:])["s"], json.loads(hi[3:])["i"]
    )
    session.send(line, None)
    session.welcome(session.feed_and_read(ok)[1])  # type: ignore[index]
    assert session.ready


def test_recorded_wrong_password_is_an_authentication_error_and_ends_the_session() -> None:
    entries = [e for e in load("03_handshake_wrong_password") if e.conn == "c1"]
    greeting, refusal = [e.data for e in entries if e.kind == "recv"][:2]
    session: ClientSession[None] = ClientSession(WHERE, hostname="h", pid=1, password="nope")
    session.expect(None)
    session.receive_data(greeting)
    [(_, hi)] = drain(session)
    session.send(session.hello(hi), None)
    _, reply = session.feed_and_read(refusal)  # type: ignore[misc]
    with pytest.raises(AuthenticationError) as info:
        session.welcome(reply)
    assert (info.value.code, info.value.message) == ("ERR", "Invalid password")
    assert isinstance(session.error, ConnectionClosedError)  # the server hangs up
    assert not session.ready


def test_a_password_wanted_but_not_given_fails_before_hello() -> None:
    session: ClientSession[None] = ClientSession(WHERE, hostname="h", pid=1)
    with pytest.raises(AuthenticationError, match="password"):
        session.hello('HI {"v":2,"i":3,"s":"5f2a9c"}')
    assert session.error is not None


@pytest.mark.parametrize(
    ("greeting", "error"),
    [
        ("HELLO there", RemoteProtocolError),
        ('HI {"v":"two"}', RemoteProtocolError),
        (ErrorReply("ERR", "shutdown in progress"), ShutdownInProgressError),
        (42, RemoteProtocolError),
    ],
)
def test_a_bad_greeting_is_a_typed_error(greeting: Any, error: type[Exception]) -> None:
    session: ClientSession[None] = ClientSession(WHERE, hostname="h", pid=1)
    with pytest.raises(error):
        session.hello(greeting)
    assert session.error is not None


def test_the_handshake_happens_once_and_in_order() -> None:
    session: ClientSession[None] = ClientSession(WHERE, hostname="h", pid=1)
    with pytest.raises(LocalProtocolError):
        session.welcome("OK")
    session.hello('HI {"v":2}')
    with pytest.raises(LocalProtocolError):
        session.hello('HI {"v":2}')
    with pytest.raises(RemoteProtocolError, match="HELLO"):
        session.welcome("KO")


def test_hanging_up_says_when() -> None:
    session: ClientSession[None] = ClientSession(WHERE, hostname="h", pid=1)
    assert "during the handshake" in str(session.hung_up())
    assert str(opened().hung_up()) == f"{WHERE} closed the connection"


# -- pairing ------------------------------------------------------------------------------

PLANS = [
    p
    for name in names()
    for conn in dict.fromkeys(e.conn for e in load(name))
    if (p := plan(name, conn)) is not None and p.calls
]


def test_the_recordings_give_enough_conversations() -> None:
    assert len(PLANS) >= 20
    assert sum(len(p.calls) for p in PLANS) >= 250


def replay(p: Plan, cuts: list[int]) -> list[tuple[Any, Any]]:
    """A recorded conversation through a session: greeting and replies split at ``cuts``."""
    hello = p.hello
    session: ClientSession[int] = ClientSession(
        WHERE,
        hostname=hello.get("hostname"),
        pid=hello["pid"],
        wid=hello.get("wid"),
        labels=hello.get("labels") or (),
        password=PASSWORD,
    )
    session.expect(-1)
    got: list[tuple[Any, Any]] = []
    stream = p.greeting + b"+OK\r\n" + b"".join(call.reply for call in p.calls)
    for chunk in chunked(stream, cuts):
        session.receive_data(chunk)
        while session.pending and (item := session.next_reply()) is not NEED_DATA:
            token, reply = item
            if token == -1:  # the greeting: answer it, then send every command at once
                assert json.loads(session.send(session.hello(reply), -2)[6:]) == hello
            elif token == -2:
                session.welcome(reply)
                session.send_many([c.line for c in p.calls], range(len(p.calls)))
            else:
                got.append(item)
    assert not session.pending and not session.buffered
    return got


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(PLANS), st.lists(st.integers(0, 100_000), max_size=30))
def test_recorded_replies_reach_their_commands_however_split(p: Plan, cuts: list[int]) -> None:
    expected = []
    for index, call in enumerate(p.calls):
        reader = ReplyReader()
        reader.feed(call.reply)
        expected.append((index, reader.next_reply()))
    assert replay(p, cuts) == expected


replies = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)
    .filter(lambda t: t != "")
    .map(lambda t: (encode_simple(t), t)),
    st.binary(max_size=100).map(lambda b: (encode_bulk(b), b)),
    st.just((encode_bulk(None), None)),
    st.sampled_from(["Job not found 0123456789abcdef", "jobs must have a jobtype parameter"]).map(
        lambda m: (encode_error(m), ErrorReply("ERR", m))
    ),
    st.integers(-(2**40), 2**40).map(lambda n: (b":%d\r\n" % n, n)),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(replies, min_size=1, max_size=10),
    st.sampled_from(["shutdown in progress", "Invalid password", "too many connections: 9"]),
    st.integers(0, 10),
    st.integers(0, 3),
    st.lists(st.integers(0, 10_000), max_size=15),
)
def test_after_a_closing_error_the_rest_is_handed_back(
    items: list[tuple[bytes, Any]], closing: str, at: int, extra: int, cuts: list[int]
) -> None:
    """Replies before the closing error reach their commands; the rest of the commands get
    no reply and are handed back, oldest first. A refused admission fails all of them."""
    at = min(at, len(items))
    wire = [w for w, _ in items[:at]] + [encode_error(closing)]
    tokens = list(range(len(items) + extra + 1))
    session = opened()
    session.send_many([b"NOOP\r\n"] * len(tokens), tokens)
    got: list[tuple[Any, Any]] = []
    error: Exception | None = None
    try:
        for chunk in chunked(b"".join(wire), cuts):
            session.receive_data(chunk)
            while (item := session.next_reply()) is not NEED_DATA:
                got.append(item)
        session.next_reply()  # every reply is in: the next read says the session is over
    except (ConnectError, ConnectionClosedError) as exc:
        error = exc
    assert error is session.error
    lost = session.lose(ConnectionClosedError("the end"))
    assert session.error is error  # the first error stays
    if closing.startswith("too many connections"):
        # Refused before reading any command: nothing was run, no reply was paired.
        assert isinstance(error, ConnectError) and error.command_sent is False
        assert "nothing was run" in str(error)
        assert got == [(t, v) for t, (_, v) in zip(tokens, items[:at], strict=False)]
        assert [t for t, _ in got] + lost == tokens
    else:
        assert got == [(t, v) for t, (_, v) in zip(tokens, items[:at], strict=False)] + [
            (at, ErrorReply("ERR", closing))
        ]
        assert lost == tokens[at + 1 :]
        assert str(error) == f"{WHERE} closed the connection after -ERR {closing}"


def test_a_refused_admission_in_the_same_packet_as_the_ok() -> None:
    """Faktory 1.9+: ``+OK`` and ``-ERR too many connections`` arrive together."""
    session: ClientSession[str] = ClientSession(WHERE, hostname="h", pid=1)
    session.expect("greeting")
    session.receive_data(b'+HI {"v":2}\r\n')
    [(_, greeting)] = drain(session)
    session.send(session.hello(greeting), "hello")
    session.receive_data(b"+OK\r\n-ERR too many connections: 2001\r\n")
    _, ok = session.next_reply()  # type: ignore[misc]
    session.welcome(ok)
    session.send(b"PUSH {}\r\n", "push")
    with pytest.raises(ConnectError, match="too many connections: 2001") as info:
        session.next_reply()
    assert info.value.command_sent is False
    assert session.lose(info.value) == ["push"]


def test_bytes_that_break_resp_end_the_session() -> None:
    session = opened()
    session.send_many([b"INFO\r\n", b"INFO\r\n"], ["a", "b"])
    with pytest.raises(RemoteProtocolError):
        session.feed_and_read(b"*1\r\n")
    with pytest.raises(RemoteProtocolError):  # and so does every later read
        session.next_reply()
    assert session.lose(ConnectionClosedError("x")) == ["a", "b"]


def test_a_reply_nobody_asked_for_is_a_protocol_error() -> None:
    session = opened()
    with pytest.raises(RemoteProtocolError, match="nobody asked"):
        session.feed_and_read(b"+OK\r\n")


def test_error_replies_that_keep_the_connection_are_values() -> None:
    session = opened()
    session.send(b"FAIL {}\r\n", "fail")
    assert session.feed_and_read(b"-ERR Job not found 0123456789abcdef\r\n") == (
        "fail",
        ErrorReply("ERR", "Job not found 0123456789abcdef"),
    )
    assert session.ready and session.error is None


@pytest.mark.parametrize(
    ("code", "message", "closes"),
    [
        ("ERR", "shutdown in progress", True),
        ("ERR", "Invalid password", True),
        ("ERR", "too many connections: 10000", True),
        ("ERR", "Job not found x", False),
        ("NOTUNIQUE", "Job not unique", False),
        ("NOTUNIQUE", "shutdown in progress", False),
    ],
)
def test_which_errors_close_the_connection(code: str, message: str, closes: bool) -> None:
    assert closes_connection(ErrorReply(code, message)) is closes

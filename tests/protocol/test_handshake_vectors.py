"""HI / HELLO and the password hash: the published vectors and the recorded hashes."""

from __future__ import annotations

import json

import pytest
from tests.transcripts import load

import werk
from werk._errors import RemoteProtocolError
from werk._protocol.handshake import (
    Greeting,
    HandshakeRejected,
    Hello,
    check_password,
    hello_payload,
    parse_greeting,
    parse_hello,
    password_hash,
)
from werk._protocol.resp import ReplyReader

PASSWORD = "secret-pw"  # FAKTORY_PASSWORD of the recordings


@pytest.mark.parametrize(
    ("password", "salt", "iterations", "expected"),
    [
        ("s3cret", "5f2a9c", 1, "64128b478ad3f8d12c660adc833ea08f2b0b51bda9b4177ad85705a4882da830"),
        ("s3cret", "5f2a9c", 3, "da6e25ca9967b839a8d17ce1d68f56f4003b56949cd42a8b54a99e05fac3c28b"),
        (
            "s3cret",
            "1c0ffee",
            4000,
            "6396ff6d461490a9ca30d7673266e66a750235d4cb39b50a0f97d6a0b40b3bb9",
        ),
    ],
)
def test_published_vectors(password: str, salt: str, iterations: int, expected: str) -> None:
    assert password_hash(password, salt, iterations) == expected


def _greeting_and_hello(name: str, conn: str) -> tuple[Greeting, dict[str, object]]:
    entries = [e for e in load(name) if e.conn == conn]
    reader = ReplyReader()
    reader.feed(next(e.data for e in entries if e.kind == "recv"))
    greeting = parse_greeting(reader.next_reply())
    hello_line = next(e.data for e in entries if e.kind == "send")
    return greeting, json.loads(hello_line[6:])


@pytest.mark.parametrize("conn", ["c1", "c2"])
def test_recorded_accepted_hashes(conn: str) -> None:
    greeting, hello = _greeting_and_hello("02_handshake_password", conn)
    assert greeting.iterations and greeting.iterations >= 4000
    assert hello["pwdhash"] == password_hash(PASSWORD, greeting.salt or "", greeting.iterations)
    ours = hello_payload(
        greeting,
        password=PASSWORD,
        wid=hello.get("wid"),  # type: ignore[arg-type]
        hostname="host1",
        pid=4242,
        labels=hello.get("labels") or (),  # type: ignore[arg-type]
    )
    assert json.dumps(ours, separators=(",", ":")) == json.dumps(hello, separators=(",", ":"))
    assert check_password(parse_hello(b"HELLO " + json.dumps(hello).encode()), greeting, PASSWORD)


def test_recorded_v1_hash_is_a_single_round() -> None:
    greeting, hello = _greeting_and_hello("02_handshake_password", "c3")
    assert hello["v"] == 1
    assert hello["pwdhash"] == password_hash(PASSWORD, greeting.salt or "", 1)
    assert check_password(parse_hello(b"HELLO " + json.dumps(hello).encode()), greeting, PASSWORD)


def test_recorded_rejections() -> None:
    """Every HELLO of transcript 03 fails the server-side check, for the recorded reason."""
    cases = {
        c: _greeting_and_hello("03_handshake_wrong_password", c)
        for c in ("c1", "c2", "c3", "c4", "c5", "c6")
    }
    for greeting, hello in cases.values():
        assert not check_password(
            parse_hello(b"HELLO " + json.dumps(hello).encode()), greeting, PASSWORD
        )
    g3, h3 = cases["c3"]  # the right digest in uppercase hex
    assert str(h3["pwdhash"]).lower() == password_hash(PASSWORD, g3.salt or "", g3.iterations or 1)
    g4, h4 = cases["c4"]  # v:2 but hashed once
    assert h4["pwdhash"] == password_hash(PASSWORD, g4.salt or "", 1)
    g5, h5 = cases["c5"]  # v:1 but hashed i times
    assert h5["pwdhash"] == password_hash(PASSWORD, g5.salt or "", g5.iterations or 1)
    _, h6 = cases["c6"]  # the previous connection's hash (stale salt)
    assert h6["pwdhash"] == h5["pwdhash"]
    assert "pwdhash" not in cases["c2"][1]


def test_parse_greeting_forms() -> None:
    assert parse_greeting('HI {"v":2}') == Greeting(2, None, None)
    assert parse_greeting(b'HI {"v":2,"i":7935,"s":"f6d2079fe3b1ec6"}') == Greeting(
        2, 7935, "f6d2079fe3b1ec6"
    )
    assert parse_greeting('HI {"v":3}').version == 3  # warn-only territory: not an error
    for bad in ["OK", 'HI {"v":"2"}', "HI not json", "HI []", None, 42, 'HI {"s":5}']:
        with pytest.raises(RemoteProtocolError):
            parse_greeting(bad)


def test_greeting_encode_round_trip() -> None:
    for greeting in (Greeting(), Greeting.new(True), Greeting(2, 5000, "abc")):
        reader = ReplyReader()
        reader.feed(greeting.encode())
        assert parse_greeting(reader.next_reply()) == greeting
    fresh = Greeting.new(True)
    assert 4000 <= (fresh.iterations or 0) <= 8095 and fresh.salt and len(fresh.salt) <= 16
    assert Greeting.new(True).salt != fresh.salt


def test_hello_payload_roles() -> None:
    g = Greeting()
    assert hello_payload(g, hostname="h", pid=1) == {"hostname": "h", "pid": 1, "v": 2}
    worker = hello_payload(g, wid="w", hostname="h", pid=1, labels=["python"])
    assert list(worker) == ["hostname", "wid", "pid", "labels", "v"]
    assert worker["labels"] == ["python"]
    with_pw = hello_payload(Greeting(2, 3, "5f2a9c"), password="s3cret", hostname="h")
    assert with_pw["pwdhash"] == password_hash("s3cret", "5f2a9c", 3)
    with pytest.raises(werk.AuthenticationError):
        hello_payload(Greeting(2, 3, "5f2a9c"))


def test_parse_hello_server_role() -> None:
    hello = parse_hello(b'HELLO {"hostname":"h","wid":"w","pid":1,"labels":["a"],"v":2,"x":1}')
    assert hello == Hello(v=2, wid="w", hostname="h", pid=1, labels=["a"])
    assert parse_hello(b"HELLO {}") == Hello()
    for bad in [
        b"hello {}",
        b"INFO",
        b"HELLO {not json",
        b'HELLO {"pid":"123"}',
        b"HELLO []",
        b'HELLO {"v":256}',
        b'HELLO {"labels":"a"}',
        b'HELLO {"wid":1}',
    ]:
        with pytest.raises(HandshakeRejected):
            parse_hello(bad)

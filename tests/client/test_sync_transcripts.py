"""Replay the real server's recordings against werk.Client through a scripted peer.

Where the client is deterministic (hostname, pid, wid, labels and password fixed, salt as
recorded) it must send exactly the recorded bytes.
"""

from __future__ import annotations

import os

import pytest
from tests.client.peer import Close, Expect, ExpectEOF, ReadLine, ScriptedPeer, Send
from tests.transcripts import Entry, load

import werk
from werk import Client, Mutation, Target
from werk._protocol.handshake import password_hash


def conversation(name: str, conn: str) -> list[Entry]:
    return [e for e in load(name) if e.conn == conn and e.kind in ("send", "recv", "eof")]


def replay(name: str, conn: str) -> list[Send | Expect | Close]:
    """Recorded server bytes are sent; recorded client bytes are expected exactly."""
    steps: list[Send | Expect | Close] = []
    for e in conversation(name, conn):
        if e.kind == "recv":
            steps.append(Send(e.data))
        elif e.kind == "send":
            steps.append(Expect(e.data))
        else:
            steps.append(Close())
    return steps


@pytest.fixture
def pid_4242(monkeypatch: pytest.MonkeyPatch) -> None:
    # The recordings were made by a process with pid 4242.
    monkeypatch.setattr(os, "getpid", lambda: 4242)


def test_worker_handshake_without_password_then_end(pid_4242: None) -> None:
    with ScriptedPeer([replay("01_handshake_no_password", "c1")]) as peer:
        client = Client(peer.url, wid="wid-abc123", hostname="host1", labels=["python", "test"])
        client.connect()
        client.close()  # END, no reply awaited
    assert peer.lines[0][-1] == b"END\r\n"


def test_producer_handshake_and_info(pid_4242: None) -> None:
    script = [*replay("01_handshake_no_password", "c2"), ExpectEOF()]
    info_reply = conversation("01_handshake_no_password", "c2")[-1].data
    with ScriptedPeer([script]) as peer:
        client = Client(peer.url, hostname="host1")
        info = client.info()
        client.abort()  # the recording closed the socket without END
    assert info["server"]["faktory_version"] == "1.10.0"
    assert info == werk._protocol.jsonc.loads(info_reply.split(b"\r\n")[1])


def test_worker_with_password_sends_the_recorded_pwdhash(pid_4242: None) -> None:
    # Transcript 02, c1: i=6913, salt 37765fcda836ae0e, FAKTORY_PASSWORD=secret-pw.
    with (
        ScriptedPeer([replay("02_handshake_password", "c1")]) as peer,
        Client(
            peer.url, password="secret-pw", wid="wid-pw1", hostname="host1", labels=["python"]
        ) as client,
    ):
        assert client.info()["faktory"]["total_queues"] == 0


def test_producer_with_password_from_url(pid_4242: None) -> None:
    script = [*replay("02_handshake_password", "c2"), ExpectEOF()]
    with ScriptedPeer([script]) as peer:
        client = Client(f"tcp://:secret-pw@127.0.0.1:{peer.port}", hostname="host1")
        client.connect()
        client.abort()


def test_url_encoded_password_is_decoded(pid_4242: None) -> None:
    greeting = b'+HI {"v":2,"i":3,"s":"5f2a9c"}\r\n'
    hashed = password_hash("p@ss:w/rd%", "5f2a9c", 3)
    hello = b'HELLO {"hostname":"h","pid":4242,"v":2,"pwdhash":"%s"}\r\n' % hashed.encode()
    with ScriptedPeer([[Send(greeting), Expect(hello), Send(b"+OK\r\n")]]) as peer:
        Client(f"tcp://:p%40ss%3Aw%2Frd%25@127.0.0.1:{peer.port}", hostname="h").connect()


@pytest.mark.parametrize("conn", ["c1", "c3", "c4", "c5", "c6"])
def test_wrong_password_is_an_authentication_error(conn: str) -> None:
    entries = conversation("03_handshake_wrong_password", conn)
    greeting, error = entries[0].data, entries[2].data
    assert error == b"-ERR Invalid password\r\n"
    script = [Send(greeting), ReadLine(), Send(error), Close()]
    with ScriptedPeer([script]) as peer:
        client = Client(peer.url, password="not-the-password")
        with pytest.raises(werk.AuthenticationError) as info:
            client.push("Job", 1)
        assert not client.connected
    assert "Invalid password" in str(info.value)
    assert (info.value.code, info.value.message) == ("ERR", "Invalid password")
    assert not any(line.startswith(b"PUSH") for line in peer.lines[0])


def test_missing_password_fails_before_sending_hello() -> None:
    greeting = conversation("03_handshake_wrong_password", "c2")[0].data
    with (
        ScriptedPeer([[Send(greeting), ExpectEOF()]]) as peer,
        pytest.raises(werk.AuthenticationError, match="password"),
    ):
        Client(peer.url).connect()
    assert peer.lines[0] == []


@pytest.mark.parametrize("conn", ["c7", "c9", "c10"])
def test_server_closing_during_handshake_is_a_typed_error(conn: str) -> None:
    greeting = conversation("01_handshake_no_password", conn)[0].data
    with (
        ScriptedPeer([[Send(greeting), ReadLine(), Close()]]) as peer,
        pytest.raises(werk.ConnectionClosedError, match="handshake"),
    ):
        Client(peer.url).connect()


def test_not_a_faktory_greeting() -> None:
    with (
        ScriptedPeer([[Send(b"+HELLO there\r\n"), ExpectEOF()]]) as peer,
        pytest.raises(werk.RemoteProtocolError, match="HI"),
    ):
        Client(peer.url).connect()


def _conversation(name: str, conn: str = "c1") -> list[Send | Expect | Close]:
    # Skip the recorder's own HELLO (its key order differs); answer ours instead.
    steps = replay(name, conn)
    assert isinstance(steps[1], Expect) and steps[1].line.startswith(b"HELLO ")
    return [
        steps[0],
        Expect(
            b'HELLO {"hostname":"vm","wid":"wid-c1","pid":4242,'
            b'"labels":["python","smoke"],"v":2}\r\n'
        ),
        *steps[2:],
    ]


def worker(url: str) -> Client:
    return Client(url, wid="wid-c1", hostname="vm", labels=["python", "smoke"])


def test_mutate_transcript_bytes(pid_4242: None) -> None:
    """Every MUTATE the builder can express goes out exactly as recorded."""
    recorded = [e.data for e in conversation("15_mutate", "c1") if e.data.startswith(b"MUTATE")]
    built = [
        Mutation.kill(Target.RETRIES).jids("jid-retry-A1"),
        Mutation.requeue(Target.RETRIES).jobtype("TypeB"),
        Mutation.discard(Target.SCHEDULED).matching("*uid:jid-sched-S2a*"),
        Mutation.kill(Target.SCHEDULED).jobtype("S1"),
        Mutation.requeue(Target.DEAD).matching("*jid-sched*").jobtype("S1"),
        Mutation.requeue(Target.DEAD).jids("jid-dead-D1", "jid-retry-A1"),
        Mutation.discard(Target.DEAD).jobtype("TypeA"),
        Mutation.clear(Target.SCHEDULED),
        Mutation.discard(Target.DEAD),
        Mutation.kill(Target.RETRIES).jids("nope-nope"),
    ]
    script: list[Send | Expect | ReadLine | Close] = [
        Send(b'+HI {"v":2}\r\n'),
        ReadLine(),
        Send(b"+OK\r\n"),
    ]
    for m in built:
        line = werk._protocol.command_lines.mutate(m.to_dict())
        assert line in recorded, line
        script += [Expect(line), Send(b"+OK\r\n")]
    with ScriptedPeer([script]) as peer:
        client = Client(peer.url)
        for m in built:
            client.mutate(m)
        client.abort()

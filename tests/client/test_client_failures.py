"""Broken connections, bad replies and bad jobs, for both clients.

What must not be lost: a job whose PUSH failed is either reported as "not sent" or named
in the error (``unknown_jids``) as possibly stored; never stored silently. A failed call
never poisons the next one: it reconnects (a new HI/HELLO) transparently.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from tests.client.conftest import MakeClient
from tests.client.peer import Close, Expect, ExpectEOF, ReadLine, Respond, ScriptedPeer, Send, Sleep

import werk
from werk._protocol.jsonc import loads

HI = Send(b'+HI {"v":2}\r\n')
OK = Send(b"+OK\r\n")
HANDSHAKE = [HI, ReadLine(), OK]


def pushed_jid(line: bytes) -> str:
    return str(loads(line[5:])["jid"])


def test_connection_closed_after_push_names_the_job_and_reconnects(make_client: MakeClient) -> None:
    first = [*HANDSHAKE, ReadLine(), Close()]  # reads the PUSH, dies before answering
    second = [*HANDSHAKE, ReadLine(), OK]
    with ScriptedPeer([first, second]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.ConnectionClosedError) as info:
            client.push("Resize", 1)
        assert not client.connected
        jid = client.push("Resize", 2)  # a new connection, a new handshake
    exc = info.value
    sent = pushed_jid(peer.lines[0][1])
    assert exc.command_sent is True
    assert exc.unknown_jids == (sent,)  # the caller is told which job may be stored
    assert sent in str(exc) and "may have stored" in str(exc)
    assert peer.accepted == 2
    assert peer.lines[1][0].startswith(b"HELLO ")
    assert pushed_jid(peer.lines[1][1]) == jid != sent


def test_refused_connection_says_nothing_was_sent(make_client: MakeClient) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(f"tcp://127.0.0.1:{port}", timeout=1)
    with pytest.raises(werk.ConnectError) as info:
        client.push("Resize", 1)
    assert info.value.command_sent is False
    assert info.value.unknown_jids == ()
    assert "nothing was sent" in str(info.value)


def test_malformed_reply_is_a_protocol_error_then_reconnects(make_client: MakeClient) -> None:
    first = [*HANDSHAKE, ReadLine(), Send(b"?what\r\n"), ExpectEOF()]
    second = [*HANDSHAKE, Expect(b"INFO\r\n"), Send(b"$2\r\n{}\r\n")]
    with ScriptedPeer([first, second]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.RemoteProtocolError, match="unexpected reply"):
            client.ack("0123456789abcdef")
        assert client.info() == {}


@pytest.mark.parametrize("reply", [b"$5\r\nabc\r\nXY", b"$x\r\n", b":nan\r\n", b"*1\r\n"])
def test_broken_framing_drops_the_connection(make_client: MakeClient, reply: bytes) -> None:
    with ScriptedPeer([[*HANDSHAKE, ReadLine(), Send(reply), ExpectEOF()]]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.RemoteProtocolError):
            client.info()
        assert not client.connected


@pytest.mark.parametrize("reply", [b"$3\r\n{}}\r\n", b"$3\r\n[1]\r\n", b"+OK\r\n"])
def test_well_framed_nonsense_is_a_protocol_error(make_client: MakeClient, reply: bytes) -> None:
    # The stream is still in step, so the connection survives for the next command.
    script = [*HANDSHAKE, ReadLine(), Send(reply), Expect(b"FLUSH\r\n"), OK]
    with ScriptedPeer([script]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.RemoteProtocolError, match="INFO"):
            client.info()
        client.flush()
    assert peer.accepted == 1


def test_fetch_reply_that_is_not_a_job(make_client: MakeClient) -> None:
    script = [*HANDSHAKE, ReadLine(), Send(b'$7\r\n{"a":1}\r\n')]
    with ScriptedPeer([script]) as peer, pytest.raises(werk.RemoteProtocolError, match="not a job"):
        make_client(peer.url).fetch()
    assert peer.lines[0][1] == b"FETCH default\r\n"


def test_read_timeout_then_reconnect(make_client: MakeClient) -> None:
    first = [*HANDSHAKE, ReadLine(), Sleep(2.5)]
    second = [*HANDSHAKE, ReadLine(), OK]
    with ScriptedPeer([first, second]) as peer:
        client = make_client(peer.url, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(werk.NetworkTimeout) as info:
            client.push("Resize", 1)
        assert time.monotonic() - started < 2.0  # the timeout, not the peer's 2.5 s
        assert info.value.unknown_jids == (pushed_jid(peer.lines[0][1]),)
        client.push("Resize", 2)


def test_fetch_is_allowed_the_servers_two_second_block(make_client: MakeClient) -> None:
    # A 0.2 s read timeout, but FETCH may take 0.2 + 2 s: a 0.6 s answer is fine.
    script = [*HANDSHAKE, Expect(b"FETCH q\r\n"), Sleep(0.6), Send(b"$-1\r\n")]
    with ScriptedPeer([script]) as peer:
        assert make_client(peer.url, timeout=0.2).fetch("q") is None


def test_silent_server_cannot_hang_the_handshake(make_client: MakeClient) -> None:
    with ScriptedPeer([[Sleep(3.0)]]) as peer:
        client = make_client(peer.url, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(werk.NetworkError):
            client.info()
        assert time.monotonic() - started < 2.5  # the timeout, not the peer's 3 s


def test_error_reply_keeps_the_connection(make_client: MakeClient) -> None:
    script = [
        *HANDSHAKE,
        ReadLine(),
        Send(b"-ERR Job not found 0123456789abcdef\r\n"),
        Expect(b"INFO\r\n"),
        Send(b"$2\r\n{}\r\n"),
    ]
    with ScriptedPeer([script]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.JobNotFoundError) as info:
            client.fail("0123456789abcdef", RuntimeError("boom"))
        assert (info.value.code, info.value.message) == ("ERR", "Job not found 0123456789abcdef")
        assert client.info() == {}
    assert peer.accepted == 1


def test_custom_error_codes_are_kept(make_client: MakeClient) -> None:
    script = [*HANDSHAKE, ReadLine(), Send(b"-NOTUNIQUE Job not unique\r\n")]
    with ScriptedPeer([script]) as peer, pytest.raises(werk.ServerError) as info:
        make_client(peer.url).push("Resize", 1)
    assert (info.value.code, info.value.message) == ("NOTUNIQUE", "Job not unique")


def test_shutdown_error_drops_the_connection(make_client: MakeClient) -> None:
    first = [*HANDSHAKE, ReadLine(), Send(b"-ERR shutdown in progress\r\n"), Close()]
    second = [*HANDSHAKE, ReadLine(), OK]
    with ScriptedPeer([first, second]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.ShutdownInProgressError):
            client.push("Resize", 1)
        assert not client.connected
        client.push("Resize", 2)
    assert peer.accepted == 2


def test_admission_refused_after_ok_is_a_connect_error_then_reconnects(
    make_client: MakeClient,
) -> None:
    # Faktory 1.9+ beyond its connection limit: +OK to HELLO, then at once (before reading a
    # command) "-ERR too many connections: N" and a hang-up (server/server.go processLines).
    # The PUSH that reads this error was never run: a refused connection, nothing stored.
    refused = b"+OK\r\n-ERR too many connections: 2001\r\n"
    first = [HI, ReadLine(), Send(refused), ReadLine(), Close()]
    second = [*HANDSHAKE, ReadLine(), OK]
    with ScriptedPeer([first, second]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.ConnectError, match="too many connections: 2001") as info:
            client.push("Resize", 1)
        assert info.value.command_sent is False
        assert info.value.unknown_jids == ()
        assert not client.connected
        jid = client.push("Resize", 2)
    assert peer.accepted == 2
    assert pushed_jid(peer.lines[1][1]) == jid


def test_execute_many_cut_short_is_a_network_error_then_reconnects(
    make_client: MakeClient,
) -> None:
    ack, fetch = b'ACK {"jid":"0123456789abcdef"}\r\n', b"FETCH q\r\n"
    first = [*HANDSHAKE, Expect(ack), Expect(fetch), OK, Close()]  # answers the ACK only
    second = [*HANDSHAKE, Expect(ack), Expect(fetch), OK, Send(b"$-1\r\n")]
    with ScriptedPeer([first, second]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.ConnectionClosedError) as info:
            client.execute_many([ack, fetch], blocking=True)
        assert info.value.command_sent is True
        assert not client.connected
        assert client.execute_many([ack, fetch], blocking=True) == ["OK", None]
    assert peer.accepted == 2


def test_push_always_sends_retry(make_client: MakeClient) -> None:
    """Faktory 1.6-1.10 turn an explicit retry into the default of later jobs that omit it,
    so werk never omits it: 25 (Faktory's default) unless the caller says otherwise."""

    def answer(line: bytes) -> bytes | None:
        if line.startswith(b"PUSHB "):
            return b"$2\r\n{}\r\n"
        return None if line == b"END\r\n" else b"+OK\r\n"

    with ScriptedPeer([[HI, Respond(answer)]]) as peer:
        client = make_client(peer.url)
        client.push("A")
        client.push("A", retry=0)
        client.push(werk.Job("A"))
        client.push(werk.Job("A", retry=-1))
        client.push_bulk([werk.Job("A"), {"jobtype": "A"}, {"jobtype": "A", "retry": 3}])
        client.close()
    pushes = [loads(line[5:]) for line in peer.lines[0] if line.startswith(b"PUSH ")]
    (bulk,) = [loads(line[6:]) for line in peer.lines[0] if line.startswith(b"PUSHB ")]
    assert [job["retry"] for job in pushes] == [25, 0, 25, -1]
    assert [job["retry"] for job in bulk] == [25, 25, 3]


def test_invalid_job_is_never_sent(make_client: MakeClient) -> None:
    with ScriptedPeer([[*HANDSHAKE, Expect(b"INFO\r\n"), Send(b"$2\r\n{}\r\n")]]) as peer:
        client = make_client(peer.url)
        client.connect()
        with pytest.raises(werk.JobValidationError) as info:
            client.push("Resize", 1, queue="bad queue!")
        assert info.value.field == "queue"
        for bad in [{"reserve_for": 86401}, {"at": "2030-01-01 10:00:00"}, {"jid": "short"}]:
            with pytest.raises(werk.JobValidationError):
                client.push("Resize", 1, **bad)
        with pytest.raises(werk.JobValidationError):
            client.push("Resize", object())
        with pytest.raises(TypeError, match="priority"):
            client.push("Resize", 1, priority=9)
        client.info()
    assert not any(line.startswith(b"PUSH") for line in peer.lines[0])


def test_bulk_push_failure_says_what_was_stored(make_client: MakeClient) -> None:
    first = [*HANDSHAKE, ReadLine(), Send(b"$2\r\n{}\r\n"), ReadLine(), Close()]
    with ScriptedPeer([first]) as peer:
        client = make_client(peer.url)
        jobs = [werk.Job("Resize", [n]) for n in range(2500)]
        with pytest.raises(werk.NetworkError) as info:
            client.push_bulk(jobs)
    jids = [j.jid for j in jobs]
    assert info.value.pushed_jids == tuple(jids[:1000])  # stored
    assert info.value.unknown_jids == tuple(jids[1000:2000])  # maybe stored
    assert len(peer.lines[0]) == 3  # HELLO + 2 PUSHB: the third chunk was never sent


def test_bulk_push_reports_rejects_and_validates_first(make_client: MakeClient) -> None:
    def answer(line: bytes) -> bytes | None:
        if line.startswith(b"HELLO"):
            return b"+OK\r\n"
        if line.startswith(b"PUSHB "):
            first = loads(line[6:])[0]["jid"]
            body = b'{"%s":"nope"}' % first.encode()
            return b"$%d\r\n%s\r\n" % (len(body), body)
        return None

    with ScriptedPeer([[HI, Respond(answer)]]) as peer:
        client = make_client(peer.url)
        with pytest.raises(werk.JobValidationError):
            client.push_bulk([werk.Job("A", [1]), {"jobtype": "B", "queue": "bad queue"}])
        jobs: list[Any] = [{"jobtype": "B", "args": [n], "retry": 3} for n in range(1001)]
        errors = client.push_bulk(jobs)
        client.close()
    pushb = [line for line in peer.lines[0] if line.startswith(b"PUSHB")]
    assert len(pushb) == 2
    firsts = [loads(line[6:])[0]["jid"] for line in pushb]
    assert errors == dict.fromkeys(firsts, "nope")
    assert [len(loads(line[6:])) for line in pushb] == [1000, 1]


def test_beat_needs_a_wid_and_reads_both_reply_forms(make_client: MakeClient) -> None:
    script = [
        *HANDSHAKE,
        Expect(b'BEAT {"wid":"w1","current_state":"quiet","rss_kb":10}\r\n'),
        Send(b'+{"state": "quiet"}\r\n'),  # the form the protocol document shows
        Expect(b'BEAT {"wid":"w1"}\r\n'),
        Send(b'$21\r\n{"state":"terminate"}\r\n'),
        Expect(b'BEAT {"wid":"w1"}\r\n'),
        OK,
    ]
    with pytest.raises(werk.ConfigurationError, match="wid"):
        make_client("tcp://127.0.0.1:1").beat()
    with ScriptedPeer([script]) as peer:
        client = make_client(peer.url, wid="w1")
        assert client.beat("quiet", 10) == "quiet"
        assert client.beat() == "terminate"
        assert client.beat() is None

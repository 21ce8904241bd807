"""The API's edges, for both clients: abort(), ack(job), typed push options, bad arguments,
and commands cut off by a server that hangs up in the middle of a pipeline.

What must not be lost: a pushed job whose fate is unknown is named (``unknown_jids``);
one the server never ran is reported as not run (``command_sent`` is False); a bad
argument is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from tests.client.conftest import MakeClient
from tests.client.peer import Close, Expect, ExpectEOF, ReadLine, ScriptedPeer, Send

import werk
from werk._protocol.jsonc import loads
from werk.client import DEFAULT_TIMEOUT, ClientSettings

HI = Send(b'+HI {"v":2}\r\n')
OK = Send(b"+OK\r\n")
HANDSHAKE = [HI, ReadLine(), OK]
JID = "0123456789abcdef"


def test_abort_drops_the_connection_without_end_and_the_next_call_reconnects(
    make_client: MakeClient,
) -> None:
    first = [*HANDSHAKE, Expect(b"FLUSH\r\n"), OK, ExpectEOF()]  # EOF, not END
    second = [*HANDSHAKE, Expect(b"FLUSH\r\n"), OK, ExpectEOF()]
    with ScriptedPeer([first, second]) as peer:
        client = make_client(peer.url)
        client.flush()
        client.abort()
        assert not client.connected
        client.abort()  # safe twice
        client.flush()
        assert client.connected
        client.abort()
    assert peer.accepted == 2
    assert b"END\r\n" not in peer.lines[0]


def test_abort_wakes_a_thread_blocked_in_fetch() -> None:
    fetching = threading.Event()
    script = [*HANDSHAKE, ReadLine(lambda line: fetching.set()), ExpectEOF(timeout=10)]
    with ScriptedPeer([script]) as peer:
        client = werk.Client(peer.url, timeout=30)
        client.connect()
        outcome: list[BaseException] = []

        def fetch() -> None:
            try:
                client.fetch("q")
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=fetch)
        thread.start()
        assert fetching.wait(10)
        client.abort()
        thread.join(10)
        assert not thread.is_alive()
    assert isinstance(outcome[0], werk.ConnectionClosedError)
    assert outcome[0].command_sent is True


def test_abort_fails_the_commands_still_waiting() -> None:
    async def main(url: str) -> None:
        client = werk.AsyncClient(url)
        await client.connect()
        pending = asyncio.create_task(client.push("Resize", 1))
        for _ in range(5):
            await asyncio.sleep(0)
        await client.abort()
        with pytest.raises(werk.ConnectionClosedError, match="aborted") as info:
            await pending
        assert info.value.command_sent and len(info.value.unknown_jids) == 1

    with ScriptedPeer([[*HANDSHAKE, ReadLine(), ExpectEOF()]]) as peer:
        asyncio.run(main(peer.url))


def test_ack_takes_the_job_or_its_jid(make_client: MakeClient) -> None:
    ack = b'ACK {"jid":"%s"}\r\n' % JID.encode()
    with ScriptedPeer([[*HANDSHAKE, Expect(ack), OK, Expect(ack), OK]]) as peer:
        client = make_client(peer.url)
        client.ack(werk.Job("Resize", jid=JID))
        client.ack(JID)


def test_push_options_are_typed_keywords(make_client: MakeClient) -> None:
    with ScriptedPeer([[*HANDSHAKE, Expect(b"INFO\r\n"), Send(b"$2\r\n{}\r\n")]]) as peer:
        client = make_client(peer.url)
        client.connect()
        with pytest.raises(TypeError, match="qeue"):
            client.push("Resize", 1, qeue="images")
        with pytest.raises(werk.JobValidationError) as info:
            client.push(werk.Job("Resize"), queue="images")
        assert info.value.field == "queue"
        assert isinstance(info.value, ValueError)
        with pytest.raises(werk.JobValidationError) as info:
            client.push(werk.Job("Resize"), 1)
        assert info.value.field == "args"
        assert client.info() == {}
    assert not any(line.startswith(b"PUSH") for line in peer.lines[0])


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.fetch("bad queue"), werk.LocalProtocolError),
        (lambda c: c.queue_pause(), werk.LocalProtocolError),
        (lambda c: c.queue_latency("*"), werk.LocalProtocolError),
        (lambda c: c.mutate("kill everything"), werk.LocalProtocolError),
        (lambda c: c.track_set(JID, percent=101), werk.LocalProtocolError),
        (lambda c: c.fail("", "boom"), werk.LocalProtocolError),
        (lambda c: c.batch_new(success="not a job"), werk.JobValidationError),
        (lambda c: c.push(42), werk.JobValidationError),
        (lambda c: c.push_bulk([{"jobtype": "A", "priority": 1}]), werk.JobValidationError),
        (lambda c: c.push_bulk(None), werk.JobValidationError),
        (lambda c: c.push_bulk([42]), werk.JobValidationError),
        (lambda c: c.fetch(42), werk.LocalProtocolError),
        (lambda c: c.batch_open(None), werk.LocalProtocolError),
        (lambda c: c.track_set(JID, reserve_until=3600), werk.LocalProtocolError),
    ],
)
def test_a_bad_argument_is_a_faktory_error_and_a_value_error(
    make_client: MakeClient, call: Any, error: type[Exception]
) -> None:
    client = make_client("tcp://127.0.0.1:1")  # nothing listens: nothing may be sent
    with pytest.raises(error) as info:
        call(client)
    assert isinstance(info.value, werk.FaktoryError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "options",
    [
        {"url": 7419},
        {"password": 1234},
        {"timeout": "5"},
        {"timeout": 0},
        {"connect_timeout": -1},
        {"ssl_context": True},
        {"labels": "python"},
        {"wid": "two words"},
    ],
)
def test_bad_settings_are_configuration_errors(options: dict[str, Any]) -> None:
    for flavour in (werk.Client, werk.AsyncClient, werk.ClientPool):
        with pytest.raises(werk.ConfigurationError) as info:
            flavour(**options)
        assert isinstance(info.value, ValueError)
    with pytest.raises(werk.ConfigurationError):
        werk.ClientPool(acquire_timeout="soon")


def test_one_default_timeout() -> None:
    assert werk.Client().settings.timeout == DEFAULT_TIMEOUT
    assert ClientSettings().timeout == DEFAULT_TIMEOUT


def test_pipelined_pushes_refused_admission_are_all_reported_not_run() -> None:
    """``-ERR too many connections`` after ``+OK``: the server read none of the pushes."""

    async def main(url: str) -> None:
        client = werk.AsyncClient(url)
        await client.connect()
        results = await asyncio.gather(
            *(client.push("Resize", n) for n in range(3)), return_exceptions=True
        )
        for result in results:
            assert isinstance(result, werk.ConnectError), result
            assert result.command_sent is False and result.unknown_jids == ()
            assert "too many connections: 2001" in str(result)
        assert not client.connected

    # The refusal comes once all three are read (Faktory sends it at once and hangs up; a
    # write racing that hang-up would fail as a lost connection, which is not under test).
    script = [
        HI,
        ReadLine(),
        Send(b"+OK\r\n"),
        ReadLine(),
        ReadLine(),
        ReadLine(),
        Send(b"-ERR too many connections: 2001\r\n"),
        ExpectEOF(),
    ]
    with ScriptedPeer([script]) as peer:
        asyncio.run(main(peer.url))


def test_a_closing_error_mid_pipeline_names_the_jobs_whose_fate_is_unknown() -> None:
    pushed: list[str] = []
    read_push = ReadLine(lambda line: pushed.append(loads(line[5:])["jid"]))

    async def main(url: str) -> None:
        client = werk.AsyncClient(url)
        results = await asyncio.gather(
            *(client.push("Resize", n) for n in range(3)), return_exceptions=True
        )
        assert isinstance(results[0], str)
        assert isinstance(results[1], werk.ShutdownInProgressError)
        assert isinstance(results[2], werk.ConnectionClosedError)
        assert results[2].unknown_jids == (pushed[2],)
        assert "shutdown in progress" in str(results[2])

    script = [
        *HANDSHAKE,
        read_push,
        read_push,
        read_push,
        Send(b"+OK\r\n-ERR shutdown in progress\r\n"),
        Close(),
    ]
    with ScriptedPeer([script]) as peer:
        asyncio.run(main(peer.url))


def test_execute_many_after_a_closing_error_fails_the_rest_at_once(
    make_client: MakeClient,
) -> None:
    ack, fetch = b'ACK {"jid":"%s"}\r\n' % JID.encode(), b"FETCH q\r\n"
    # The server answers the ACK with its shutdown error and keeps the socket open: the
    # client must not wait for the FETCH's reply (or for a timeout).
    first = [
        *HANDSHAKE,
        Expect(ack),
        Expect(fetch),
        Send(b"-ERR shutdown in progress\r\n"),
        ExpectEOF(),
    ]
    with ScriptedPeer([first]) as peer:
        client = make_client(peer.url, timeout=30)
        with pytest.raises(werk.ConnectionClosedError, match="shutdown in progress") as info:
            client.execute_many([ack, fetch], blocking=True)
        assert info.value.command_sent is True
        assert not client.connected

"""``abort()``: the connection is cut at once, without END, and the next call reconnects.

What must not be lost: a command still waiting for its reply when the connection is cut
fails with a typed error (its caller learns it), and the client is usable afterwards.
"""

from __future__ import annotations

import asyncio

import pytest
from tests.client.conftest import MakeClient
from tests.client.peer import ExpectEOF, ReadLine, ScriptedPeer, Send

import werk

HANDSHAKE = [Send(b'+HI {"v":2}\r\n'), ReadLine(), Send(b"+OK\r\n")]


def test_abort_closes_without_end_and_the_next_call_reconnects(make_client: MakeClient) -> None:
    first = [*HANDSHAKE, ExpectEOF()]  # END or any other byte here fails the peer
    second = [*HANDSHAKE, ReadLine(), Send(b"+OK\r\n")]
    with ScriptedPeer([first, second]) as peer:
        client = make_client(peer.url)
        client.connect()
        client.abort()
        assert not client.connected
        client.abort()  # safe twice
        client.push("Resize", 1)  # a new connection, a new handshake
    assert peer.accepted == 2
    assert [line[:6] for line in peer.lines[0]] == [b"HELLO "]
    assert peer.lines[1][1].startswith(b"PUSH ")


def test_abort_fails_a_pending_async_call_with_a_typed_error() -> None:
    script = [*HANDSHAKE, ReadLine(), ExpectEOF()]  # reads the INFO, never answers it

    async def main(url: str) -> None:
        client = werk.AsyncClient(url)
        await client.connect()
        info = asyncio.create_task(client.info())
        for _ in range(5):  # let the task write its command
            await asyncio.sleep(0)
        await client.abort()
        with pytest.raises(werk.ConnectionClosedError):
            await info
        assert not client.connected

    with ScriptedPeer([script]) as peer:
        asyncio.run(main(peer.url))
    assert peer.lines[0][1] == b"INFO\r\n"

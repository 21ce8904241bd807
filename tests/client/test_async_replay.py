"""The recordings again, through werk.AsyncClient: same bytes out, same results back."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from tests.client.peer import Respond, ScriptedPeer, Send
from tests.client.replay import Plan, check_outcome
from tests.client.test_sync_replay import PLANS

import werk


@pytest.mark.parametrize("p", PLANS, ids=lambda p: f"{p.name}-{p.conn}")
async def test_replay_async(p: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getpid", lambda: p.hello["pid"])
    with ScriptedPeer([p.script()]) as peer:
        client = werk.AsyncClient(peer.url, **p.client_kwargs())
        await client.connect()
        for call in p.calls:
            value: Any = None
            error: BaseException | None = None
            try:
                value = await getattr(client, call.method)(*call.args, **call.kwargs)
            except werk.FaktoryError as exc:
                error = exc
            check_outcome(call, value, error)
        if p.ends:
            await client.close()
        else:
            assert client.connected
            await client.abort()


async def test_pipelined_calls_keep_their_order() -> None:
    """Many concurrent pushes on one connection: each caller gets its own reply."""

    def answer(line: bytes) -> bytes | None:
        if line == b"END\r\n":
            return None
        if line.startswith(b"HELLO ") or line.startswith(b"PUSH "):
            return b"+OK\r\n"
        if line.startswith(b"FETCH"):
            return b"$-1\r\n"
        return b"-ERR unknown command " + line.split(b" ")[0].strip() + b"\r\n"

    with ScriptedPeer(
        [
            [
                Send(b'+HI {"v":2}\r\n'),
                Respond(answer),
            ]
        ]
    ) as peer:
        async with werk.AsyncClient(peer.url) as client:
            jids = await asyncio.gather(*(client.push("Job", n) for n in range(200)))
            assert len(set(jids)) == 200
            results = await asyncio.gather(
                client.fetch("q"), client.execute(b"NOPE\r\n"), client.push("Job", 1)
            )
            assert results[0] is None
            assert results[1] == werk._protocol.resp.ErrorReply("ERR", "unknown command NOPE")
            assert isinstance(results[2], str)
    pushed = [line for line in peer.lines[0] if line.startswith(b"PUSH ")]
    assert [werk._protocol.jsonc.loads(line[5:])["jid"] for line in pushed[:200]] == jids

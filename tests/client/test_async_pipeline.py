"""The asyncio client's connection (werk.client._pipeline): replies stay matched to callers.

What must not be lost: a cancelled caller's command was sent, so its reply is still read
off the wire and discarded - the next caller gets its own reply, never a stale one - and
the job it pushed is stored. Read timeouts are measured per command, although the
connection keeps a single timer. Every test runs on asyncio's own loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from tests.client.conftest import uvloop_module
from tests.client.peer import ExpectEOF, ReadLine, ScriptedPeer, Send, Sleep

import werk
from werk._protocol.jsonc import loads
from werk._protocol.resp import ErrorReply

HANDSHAKE = [Send(b'+HI {"v":2}\r\n'), ReadLine(), Send(b"+OK\r\n")]

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Run a coroutine to completion on a fresh loop of the given kind."""
    if request.param == "uvloop":
        return uvloop_module().run  # type: ignore[no-any-return]
    return asyncio.run


async def sent(task: asyncio.Task[Any]) -> None:
    """Let ``task`` run up to its first wait (its command is written by then)."""
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()


def test_cancelled_callers_reply_is_read_and_discarded(run: Run) -> None:
    # The peer answers both commands at once, the cancelled one's first: a client that
    # dropped the cancelled caller's slot would hand "stale" to the PUSH.
    pushed: list[str] = []
    script = [
        *HANDSHAKE,
        ReadLine(),  # INFO, whose caller is cancelled
        ReadLine(lambda line: pushed.append(loads(line[5:])["jid"])),
        Send(b"$5\r\nstale\r\n+OK\r\n"),
        ReadLine(),
        Send(b"+fresh\r\n"),
    ]

    async def main(url: str) -> None:
        client = werk.AsyncClient(url, timeout=5)
        await client.connect()
        info = asyncio.create_task(client.execute(b"INFO\r\n"))
        await sent(info)
        info.cancel()
        with pytest.raises(asyncio.CancelledError):
            await info
        jid = await client.push("Resize", 1)
        assert await client.execute(b"NOOP\r\n") == "fresh"
        assert client.connected  # no reconnect was needed
        await client.close()
        assert pushed[0] == jid

    with ScriptedPeer([script]) as peer:
        run(main(peer.url))
    assert peer.accepted == 1
    assert peer.lines[0][1] == b"INFO\r\n"


def test_cancelled_pipelined_pushes_are_still_stored(run: Run, faktory_server: Any) -> None:
    async def main() -> None:
        async with werk.AsyncClient(faktory_server.url) as client:
            tasks = [asyncio.create_task(client.push("Job", n)) for n in range(200)]
            # One loop turn: every task writes its PUSH; no reply has been read yet.
            await asyncio.sleep(0)
            assert not any(task.done() for task in tasks)
            for task in tasks[::2]:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            kept = [r for r in results if isinstance(r, str)]
            assert len(kept) == 100
            assert all(isinstance(r, asyncio.CancelledError) for r in results[::2])
            # The stream is in step: the next replies go to the right callers.
            info, job = await asyncio.gather(client.info(), client.fetch())
            assert info["faktory"]["queues"]["default"] == 200
            # The oldest job is the first push, whose caller was cancelled.
            assert job is not None and job.args == [0] and job.jid not in kept

    run(main())
    # Nothing lost: 200 pushed (100 of their callers cancelled), one fetched.
    assert faktory_server.info()["queues"] == {"default": 199}


def test_timeout_counts_from_each_command_not_from_the_timer(run: Run) -> None:
    # One timer per connection, armed at the first command: the second command is sent
    # 1.0 s later and answered 0.9 s after that, past the timer's first deadline (1.5 s)
    # but well within its own allowance. The third gets no answer and must time out.
    script = [
        *HANDSHAKE,
        ReadLine(),
        Send(b"+OK\r\n"),
        ReadLine(),
        Sleep(0.9),
        Send(b"+OK\r\n"),
        ReadLine(),
        ExpectEOF(timeout=6),
    ]

    async def main(url: str) -> float:
        client = werk.AsyncClient(url, timeout=1.5)
        await client.connect()
        assert await client.execute(b"ONE\r\n") == "OK"
        await asyncio.sleep(1.0)
        assert await client.execute(b"TWO\r\n") == "OK"
        started = time.monotonic()
        with pytest.raises(werk.NetworkTimeout) as info:
            await client.push("Resize", 3)
        assert info.value.command_sent
        assert len(info.value.unknown_jids) == 1
        return time.monotonic() - started

    with ScriptedPeer([script]) as peer:
        waited = run(main(peer.url))
    assert 1.45 <= waited < 3.5


def test_timeout_fails_every_pipelined_caller_then_reconnects(run: Run) -> None:
    pushed: list[str] = []
    read_push = ReadLine(lambda line: pushed.append(loads(line[5:])["jid"]))
    first = [*HANDSHAKE, read_push, read_push, Send(b"+OK\r\n"), ExpectEOF(timeout=3)]
    second = [*HANDSHAKE, ReadLine(), Send(b"-ERR nope\r\n")]

    async def main(url: str) -> None:
        client = werk.AsyncClient(url, timeout=1.0)
        results = await asyncio.gather(
            client.push("A", 1), client.push("B", 2), return_exceptions=True
        )
        assert isinstance(results[0], str)
        assert isinstance(results[1], werk.NetworkTimeout)
        assert results[1].unknown_jids == (pushed[1],)
        assert await client.execute(b"NOPE\r\n") == ErrorReply("ERR", "nope")

    with ScriptedPeer([first, second]) as peer:
        run(main(peer.url))
    assert peer.accepted == 2


def test_a_fetch_may_block_two_seconds_longer_than_the_timeout(run: Run) -> None:
    script = [*HANDSHAKE, ReadLine(), Sleep(0.5), Send(b"$-1\r\n")]

    async def main(url: str) -> None:
        async with werk.AsyncClient(url, timeout=0.2) as client:
            assert await client.fetch("q") is None

    with ScriptedPeer([script]) as peer:
        run(main(peer.url))


def test_pipelined_execute_many_callers_each_get_their_own_replies(run: Run) -> None:
    # One write's replies are collected for one caller: pipelined with another caller's
    # lines and a command, split across reads, and with a cancelled caller's lines in
    # between, each caller gets exactly the replies to its own lines.
    script = [
        *HANDSHAKE,
        ReadLine(),  # A1
        ReadLine(),  # A2
        ReadLine(),  # B1 (cancelled)
        ReadLine(),  # B2 (cancelled)
        ReadLine(),  # C
        ReadLine(),  # D1
        ReadLine(),  # D2
        ReadLine(),  # D3
        Send(b"+a1\r\n$2\r\na2\r\n+b"),
        Sleep(0.05),
        Send(b"1\r\n-ERR b2\r\n+c\r\n+d1\r\n"),
        Sleep(0.05),
        Send(b"-ERR d2\r\n$-1\r\n"),
    ]

    async def main(url: str) -> None:
        async with werk.AsyncClient(url, timeout=5) as client:
            a = asyncio.create_task(client.execute_many([b"A1\r\n", b"A2\r\n"]))
            b = asyncio.create_task(client.execute_many([b"B1\r\n", b"B2\r\n"]))
            c = asyncio.create_task(client.execute(b"C\r\n"))
            d = asyncio.create_task(client.execute_many([b"D1\r\n", b"D2\r\n", b"D3\r\n"]))
            await sent(d)
            b.cancel()
            assert await a == ["a1", b"a2"]
            with pytest.raises(asyncio.CancelledError):
                await b
            assert await c == "c"
            assert await d == ["d1", ErrorReply("ERR", "d2"), None]

    with ScriptedPeer([script]) as peer:
        run(main(peer.url))
    assert peer.accepted == 1

"""ClientPool and AsyncClientPool against a scripted peer."""

from __future__ import annotations

import asyncio
import threading

import pytest
from tests.client.peer import Respond, ScriptedPeer, Send

import werk


def answer(line: bytes) -> bytes | None:
    if line.startswith(b"PUSHB "):
        return b"$2\r\n{}\r\n"
    return None if line == b"END\r\n" else b"+OK\r\n"


def peer_for(connections: int) -> ScriptedPeer:
    return ScriptedPeer([[Send(b'+HI {"v":2}\r\n'), Respond(answer)]] * connections)


def test_pool_gives_each_thread_its_own_connection() -> None:
    with peer_for(3) as peer:
        pool = werk.ClientPool(peer.url, size=3)
        barrier = threading.Barrier(3)
        seen: list[int] = []

        def work() -> None:
            with pool.acquire() as client:
                barrier.wait(5)  # all three hold a client at once
                seen.append(id(client))
                for n in range(20):
                    client.push("Job", n)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(set(seen)) == 3
        pool.push("Job", 99)  # reuses an idle, connected client
        pool.close()
    assert peer.accepted == 3
    assert sum(len(lines) for lines in peer.lines) == 3 + 61 + 3  # HELLOs, PUSHes, ENDs


def test_pool_acquire_timeout() -> None:
    pool = werk.ClientPool("tcp://127.0.0.1:1", size=1, acquire_timeout=0.05)
    with pool.acquire(), pytest.raises(werk.NetworkTimeout), pool.acquire():
        pass


def test_bad_pool_settings() -> None:
    with pytest.raises(werk.ConfigurationError):
        werk.ClientPool("http://x", size=1)
    with pytest.raises(werk.ConfigurationError):
        werk.AsyncClientPool(size=0)


async def test_async_pool() -> None:
    with peer_for(2) as peer:
        async with werk.AsyncClientPool(peer.url, size=2) as pool:

            async def work(n: int) -> str:
                async with pool.acquire() as client:
                    await asyncio.sleep(0.01)
                    return await client.push("Job", n)

            jids = await asyncio.gather(*(work(n) for n in range(10)))
            assert len(set(jids)) == 10
            assert await pool.push_bulk([werk.Job("Job", [1])]) == {}
            with pytest.raises(werk.NetworkTimeout):
                pool.acquire_timeout = 0.05
                async with pool.acquire(), pool.acquire(), pool.acquire():
                    pass
    assert peer.accepted == 2

"""300 connections at once against one ``werk server`` (SQLite, a real process).

Each connection is a worker of its own: it says HELLO, pushes one job, fetches one, ACKs
it, all of them in lock step so that the server holds every connection open at once. What
must not be lost: any job, or any answer. Every connection gets every reply, the 300
fetched jobs are exactly the 300 pushed ones (none twice), and the server ends with
nothing queued or reserved and 300 processed.
"""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

import pytest
from tests.faults.harness import scaled
from tests.server.serverproc import ServerProcess

import werk

pytestmark = pytest.mark.slow


async def test_300_connections_at_once_are_all_answered(tmp_path: Path) -> None:
    n = scaled(300)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 2 * n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * n + 100), hard))
    with ServerProcess(tmp_path, "--max-connections", str(n + 100)) as proc:
        url = f"tcp://127.0.0.1:{proc.port}"
        clients = [werk.AsyncClient(url, wid=f"conn-{i:05d}", timeout=30) for i in range(n)]
        try:
            # 50 handshakes at a time: the server closes a connection whose HELLO takes
            # over 2 s (as Faktory does), and 300 at once can take that long on a loaded
            # machine. They all stay open together all the same.
            for first in range(0, n, 50):
                await asyncio.gather(*(c.connect() for c in clients[first : first + 50]))
            async with werk.AsyncClient(url) as observer:
                info = await observer.info()
            assert info["server"]["connections"] >= n + 1, info["server"]
            pushed = await asyncio.gather(
                *(
                    c.push("record", "unused", jid=f"conn-job-{i:06d}")
                    for i, c in enumerate(clients)
                )
            )
            fetched = await asyncio.gather(*(c.fetch("default") for c in clients))
            assert all(job is not None for job in fetched)
            jids = [job.jid for job in fetched if job is not None]
            assert sorted(jids) == sorted(pushed)
            await asyncio.gather(*(c.ack(jid) for c, jid in zip(clients, jids, strict=True)))
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        async with werk.AsyncClient(url) as observer:
            faktory = (await observer.info())["faktory"]
        assert sum(faktory["queues"].values()) == 0
        assert faktory["sets"]["working"] == 0
        assert faktory["total_processed"] == n
        print(f"\n{n} connections at once: {n} pushed, fetched, acked; nothing lost")

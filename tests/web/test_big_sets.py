"""Set pages over sets bigger than a chunk: the right window, and the loop keeps turning.

The backend looks at a big set a chunk per event-loop turn; these tests check that the
window it assembles from the chunks is exactly the window of a full sort, and that other
work on the loop (here a counter standing in for the command port) runs in between.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

pytest.importorskip("aiohttp")

from werk.server import EmbeddedServer
from werk.web._server_backend import CHUNK, ServerBackend

TOTAL = 2 * CHUNK + 123


async def _fill(srv: EmbeddedServer) -> list[tuple[float, str]]:
    rng = random.Random(7)
    m = srv.manager
    expected = []
    for start in range(0, TOTAL, 1000):
        jobs = []
        for i in range(start, min(start + 1000, TOTAL)):
            second = rng.randrange(1000)  # many jobs share a moment: ties broken by id
            at = f"2099-01-01T00:{second // 60:02d}:{second % 60:02d}Z"
            jobs.append({"jid": f"jid-big-{i:07d}", "jobtype": "T", "args": [], "at": at})
            expected.append((float(second), f"jid-big-{i:07d}"))
        assert m.push_bulk_bytes(json.dumps(jobs).encode()) == b"{}"
    expected.sort()  # same moment: pushed first, lower id, first
    return expected


class _Turns:
    """Counts event-loop turns while it runs."""

    def __init__(self) -> None:
        self.count = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


@pytest.mark.parametrize("offset", [0, CHUNK - 10, TOTAL - 20])
async def test_a_window_of_a_big_set_is_the_window_of_a_full_sort(offset):
    async with EmbeddedServer() as srv:
        expected = await _fill(srv)
        backend = ServerBackend(srv.server)
        turns = _Turns()
        total, entries = await backend.set_entries("scheduled", offset, 25)
        turns.task.cancel()
        assert total == TOTAL
        assert [e.jid for e in entries] == [jid for _, jid in expected[offset : offset + 25]]
        assert turns.count >= 2  # three chunks: the counter ran between them


async def test_one_job_of_a_big_set_is_found_by_jid_between_other_work():
    async with EmbeddedServer() as srv:
        await _fill(srv)
        backend = ServerBackend(srv.server)
        turns = _Turns()
        entry = await backend.set_entry("scheduled", f"jid-big-{TOTAL - 1:07d}")
        turns.task.cancel()
        assert entry is not None and entry.jid == f"jid-big-{TOTAL - 1:07d}"
        assert turns.count >= 2
        assert await backend.set_entry("scheduled", "jid-nowhere") is None


async def test_retry_all_on_a_big_set_runs_in_slices():
    async with EmbeddedServer() as srv:
        await _fill(srv)
        backend = ServerBackend(srv.server)
        turns = _Turns()
        await backend.mutate("requeue", "scheduled", None)
        turns.task.cancel()
        assert len(srv.manager.scheduled) == 0
        assert srv.manager.queue_sizes() == {"default": TOTAL}
        assert turns.count >= 10


async def test_deleting_jobs_from_a_big_queue_keeps_the_rest_in_order_between_other_work():
    async with EmbeddedServer() as srv:
        m = srv.manager
        jids = [f"jid-q-{i:07d}" for i in range(TOTAL)]
        for start in range(0, TOTAL, 1000):
            jobs = [{"jid": jid, "jobtype": "T", "args": []} for jid in jids[start : start + 1000]]
            assert m.push_bulk_bytes(json.dumps(jobs).encode()) == b"{}"
        backend = ServerBackend(srv.server)
        doomed = [jids[0], jids[CHUNK + 5], jids[-1]]
        turns = _Turns()
        assert await backend.delete_queue_jobs("default", [*doomed, "jid-nowhere"]) == 3
        turns.task.cancel()
        assert turns.count >= 2
        assert [item.jid for item in m.queues["default"]] == [j for j in jids if j not in doomed]
        assert await backend.delete_queue_jobs("default", doomed) == 0

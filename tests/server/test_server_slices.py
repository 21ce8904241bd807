"""Work that grows with the data runs in slices: other clients are served in between.

The asyncio tests share their event loop with the server, so "between two slices" is a
fact the test can observe (the set half swept when another client's PUSH is answered),
not a timing. The kill -9 test checks what a crash mid-sweep leaves behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest
from tests.server.rawclient import Raw
from tests.server.serverproc import ServerProcess

from werk.server import EmbeddedServer, ManualClock
from werk.server import _admin as admin
from werk.server._manager import Manager
from werk.server._periodic import SLICE as TASK_SLICE
from werk.server._periodic import PeriodicTasks
from werk.server._releaser import PER_SLICE
from werk.server._storage import DEAD, SCHEDULED, MemoryStorage, SQLiteStorage
from werk.server._sweep import SLICE_WORK

FUTURE = "2099-01-01T00:00:00Z"
T0 = 2_000_000_000  # 2033-05-18T03:33:20Z


async def _connect(srv: EmbeddedServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    await reader.readline()
    writer.write(b'HELLO {"v":2}\r\n')
    assert await reader.readline() == b"+OK\r\n"
    return reader, writer


def _pushb(jids: list[str], **fields: object) -> bytes:
    jobs = [{"jid": jid, "jobtype": "T", "args": [], **fields} for jid in jids]
    return b"PUSHB " + json.dumps(jobs, separators=(",", ":")).encode() + b"\r\n"


async def _fill_scheduled(srv: EmbeddedServer, count: int) -> None:
    reader, writer = await _connect(srv)
    for start in range(0, count, 1000):
        writer.write(_pushb([f"jid-sweep-{i:07d}" for i in range(start, start + 1000)], at=FUTURE))
        assert await reader.readline() == b"$2\r\n"
        assert await reader.readline() == b"{}\r\n"
    writer.close()


async def test_another_client_is_answered_in_the_middle_of_a_mutate_sweep():
    total = 30 * SLICE_WORK
    async with EmbeddedServer() as srv:
        await _fill_scheduled(srv, total)
        m = srv.manager
        mutator_reader, mutator = await _connect(srv)
        op = {"cmd": "discard", "target": "scheduled", "filter": {"regexp": "*jid-sweep-*"}}
        mutator.write(b"MUTATE " + json.dumps(op, separators=(",", ":")).encode() + b"\r\n")
        for _ in range(1000):
            if len(m.scheduled) < total:
                break
            await asyncio.sleep(0)
        assert len(m.scheduled) < total  # the sweep has begun
        reader, writer = await _connect(srv)
        writer.write(b'PUSH {"jid":"jid-meanwhile-1","jobtype":"T","args":[]}\r\n')
        assert await reader.readline() == b"+OK\r\n"
        # Answered while the sweep was still under way: neither before nor after it.
        assert 0 < len(m.scheduled) < total
        assert await mutator_reader.readline() == b"+OK\r\n"
        assert len(m.scheduled) == 0 and m.queue_sizes() == {"default": 1}
        writer.close()
        mutator.close()


async def test_a_sweep_visits_what_was_there_when_it_began():
    total = 10 * SLICE_WORK
    async with EmbeddedServer() as srv:
        await _fill_scheduled(srv, total)
        m = srv.manager
        mutator_reader, mutator = await _connect(srv)
        op = {"cmd": "requeue", "target": "scheduled"}
        mutator.write(b"MUTATE " + json.dumps(op, separators=(",", ":")).encode() + b"\r\n")
        while len(m.scheduled) == total:
            await asyncio.sleep(0)
        # A job scheduled mid-sweep is not part of it; a job fetched mid-sweep was requeued.
        reader, writer = await _connect(srv)
        writer.write(_pushb(["jid-added-late"], at=FUTURE))
        assert await reader.readline() == b"$2\r\n"
        assert await reader.readline() == b"{}\r\n"
        writer.write(b"FETCH default\r\n")
        header = await reader.readline()
        first = json.loads((await reader.readexactly(int(header[1:]) + 2))[:-2])
        assert first["jid"] == "jid-sweep-0000000"  # score order, then id order
        assert await mutator_reader.readline() == b"+OK\r\n"
        assert [e.jid for e in m.scheduled.entries.values()] == ["jid-added-late"]
        assert m.queue_sizes() == {"default": total - 1}
        writer.close()
        mutator.close()


async def test_a_removed_queue_is_gone_at_once_and_freed_a_slice_per_loop_turn():
    async with EmbeddedServer() as srv:
        m = srv.manager
        reader, writer = await _connect(srv)
        count = 2 * PER_SLICE + 10
        for start in range(0, count, 1000):
            writer.write(
                _pushb([f"jid-q-{i:07d}" for i in range(start, start + 1000)], queue="big")
            )
            await reader.readline()
            await reader.readline()
        count = len(m.queues["big"])
        admin.remove_queue(m, "big")  # what QUEUE REMOVE runs
        release = m.release
        assert "big" not in m.queues and release.pending == count
        turns = 0
        while release.pending:
            await asyncio.sleep(0)  # other callbacks (clients) run between the slices
            turns += 1
            assert release.pending == max(count - turns * PER_SLICE, 0)
        assert turns == 3
        writer.close()


@pytest.mark.slow
def test_kill_9_mid_sweep_leaves_every_job_in_exactly_one_place(tmp_path: Path):
    total = 60_000
    jids = [f"jid-sweep-{i:07d}" for i in range(total)]
    with ServerProcess(tmp_path) as proc:
        with Raw("127.0.0.1", proc.port) as c, Raw("127.0.0.1", proc.port) as watcher:
            for start in range(0, total, 1000):
                c.send(_pushb(jids[start : start + 1000], at=FUTURE))
                assert c.read() == b"{}"
            c.send(b'MUTATE {"cmd":"kill","target":"scheduled"}\r\n')
            deadline = time.monotonic() + 60
            while True:  # INFO is answered between slices: catch the sweep half done
                sets = watcher.info()["faktory"]["sets"]
                if sets["dead"] > 0 and sets["scheduled"] > total // 10:
                    break
                assert sets["scheduled"] > 0, "the sweep ended before it could be caught"
                assert time.monotonic() < deadline
        proc.kill9()
    # What was committed is a prefix of the sweep: each job in one set, none lost.
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    where: Counter[int] = Counter()
    found: dict[str, int] = {}
    for e in store.load().entries:
        where[e.kind] += 1
        assert e.jid not in found, f"{e.jid} is in two places"
        found[e.jid] = e.kind
    store.close()
    assert sorted(found) == jids
    assert set(where) == {SCHEDULED, DEAD} and where[DEAD] > 0
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        assert c.cmd('MUTATE {"cmd":"kill","target":"scheduled"}') == "OK"  # finishes it
        assert c.info()["faktory"]["sets"] == {
            "dead": total,
            "retries": 0,
            "scheduled": 0,
            "working": 0,
        }


def test_due_jobs_move_a_slice_per_run_and_all_of_them_in_the_end():
    clock = ManualClock(T0)
    m = Manager(MemoryStorage(), clock)
    count = 2 * TASK_SLICE + 500
    at = "2033-05-18T03:33:25Z"  # T0 + 5 s
    for start in range(0, count, 1000):
        jobs = [
            {"jid": f"jid-due-{i:07d}", "jobtype": "T", "args": [], "at": at}
            for i in range(start, min(start + 1000, count))
        ]
        assert m.push_bulk_bytes(json.dumps(jobs).encode()) == b"{}"
    tasks = PeriodicTasks(m)
    clock.advance(5)
    assert tasks.run_due(clock.now()) == ["Scheduled", "Retries"]
    assert m.queue_sizes() == {"default": TASK_SLICE} and "Scheduled" in tasks.unfinished
    assert tasks.resume() is True
    assert m.queue_sizes() == {"default": 2 * TASK_SLICE}
    assert tasks.resume() is False
    assert m.queue_sizes() == {"default": count} and len(m.scheduled) == 0
    stats = tasks.stats()["Scheduled"]
    assert (stats["cycles"], stats["enqueued"]) == (1, count)
    # FIFO across the slices: the queue holds them in the order they were scheduled.
    assert [item.jid for item in m.queues["default"]][:3] == [
        "jid-due-0000000",
        "jid-due-0000001",
        "jid-due-0000002",
    ]


def test_expired_reservations_are_reaped_a_slice_per_run():
    clock = ManualClock(T0)
    m = Manager(MemoryStorage(), clock, rand30=lambda: 0)
    count = TASK_SLICE + 10
    jobs = [{"jid": f"jid-res-{i:07d}", "jobtype": "T", "args": []} for i in range(count)]
    assert m.push_bulk_bytes(json.dumps(jobs).encode()) == b"{}"
    for _ in range(count):
        assert m.fetch(["default"], "wid-gone") is not None
    tasks = PeriodicTasks(m)
    clock.advance(1800 + 15)
    tasks.run_due(clock.now())
    assert len(m.reservations) == 10 and "Busy" in tasks.unfinished
    assert tasks.resume() is False
    assert len(m.reservations) == 0 and len(m.retries) == count
    assert tasks.stats()["Busy"]["reaped"] == count

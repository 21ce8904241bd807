"""Queued jobs are held compactly: with SQLite their bytes leave memory once folded into
the database and are read back when the job is fetched; with memory storage a job costs
its bytes and its id. Every field of a job comes back as it went in, whatever its jid,
``custom`` or ``reserve_for``, after a fold, a put-back and a restart."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from werk.server import _admin as admin
from werk.server._clock import ManualClock
from werk.server._manager import Manager
from werk.server._queue import JobQueue
from werk.server._sets import QueueItem
from werk.server._storage import MemoryStorage, SQLiteStorage

T0 = 1_700_000_000.0

# jids the canonical bytes do not give back verbatim (escaped, non-ASCII), a custom
# object with a "jid" key of its own, and reserve_for: kept beside the queue.
ODD = [
    {"jid": "jid-plain-0001", "jobtype": "T", "args": [1]},
    {"jid": "jid-<amp&>-0002", "jobtype": "T", "args": [2]},
    {"jid": 'jid-"quoted"\\-0003', "jobtype": "T", "args": [3]},
    {"jid": "jid-\u00e9t\u00e9-\u2028-0004", "jobtype": "T", "args": [4]},
    {"jid": "jid-custom-0005", "jobtype": "T", "args": [5], "custom": {"jid": "not-me-000"}},
    {"jid": "jid-reserve-0006", "jobtype": "T", "args": [6], "reserve_for": 600},
]


def _push_all(m: Manager) -> None:
    for job in ODD:
        assert m.push_bytes(json.dumps(job).encode()) is None


def _check_fetched(m: Manager) -> None:
    for job in ODD:
        res = m.fetch(["default"], "w1")
        assert res is not None and res.jid == job["jid"]
        payload = json.loads(res.payload)
        assert payload["args"] == job["args"] and payload["jid"] == job["jid"]
        assert payload.get("custom") == job.get("custom")
        expected = T0 + int(job.get("reserve_for", 1800))  # type: ignore[call-overload]
        assert res.score == expected
        assert m.ack(res.jid)
    assert m.fetch(["default"], "w1") is None


def test_sqlite_keeps_folded_queued_jobs_out_of_memory(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    _push_all(m)
    store.flush()
    assert len(store._queued) == len(ODD)  # journaled, not yet in the database
    store.fold()
    assert store._queued == {}
    q = m.queues["default"]
    assert q._head_payloads is None and q._tail_payloads is None
    assert [item.jid for item in q] == [job["jid"] for job in ODD]
    assert json.loads(q[0].payload)["args"] == [1]
    _check_fetched(m)
    store.close()


def test_sqlite_queued_jobs_come_back_after_a_restart(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    _push_all(m)
    store.close()
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    _check_fetched(m)
    store.close()


def test_a_job_put_back_after_its_fold_is_first_again_with_its_bytes(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    _push_all(m)
    store.flush()
    store.fold()
    res = m.fetch(["default"], "w1")
    assert res is not None
    store.flush()
    store.fold()  # its row is deleted from the database
    assert m.put_back(res)
    store.flush()
    assert m.queues["default"][0].payload == res.payload
    store.fold()  # and inserted again
    assert m.queues["default"][0].payload == res.payload
    store.close()
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    _check_fetched(m)
    store.close()


async def test_a_fetch_during_a_background_fold_reads_the_right_bytes(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    _push_all(m)
    store.flush()
    store.fold()
    store.attach(asyncio.get_running_loop())
    m.push_bytes(b'{"jid":"jid-gone-0000","jobtype":"T","args":[],"queue":"gone"}')
    admin.remove_queue(m, "gone")  # a bulk change: folded in a thread
    store.flush()
    store._fold_soon()
    assert store._fold_thread is not None
    _check_fetched(m)
    store.close()


def test_memory_storage_queue_keeps_bytes_and_order():
    m = Manager(MemoryStorage(), ManualClock(T0))
    _push_all(m)
    q = m.queues["default"]
    assert [item.jid for item in q] == [job["jid"] for job in ODD]
    assert admin.delete_queue_jobs(m, "default", [str(ODD[1]["jid"])]) == 1
    assert [item.jid for item in q][:2] == [ODD[0]["jid"], ODD[2]["jid"]]
    assert q[-1].reserve_for == 600 and q[3].custom
    _push_all(m)  # the deleted one again, at the end
    copy = q.copy()
    q.clear()
    assert not q and len(copy) == 2 * len(ODD) - 1


def test_job_queue_put_back_and_pop():
    q = JobQueue()
    q.append(QueueItem(2, "jid-00000002", 0, b'{"retry":25,"jid":"jid-00000002"}'))
    q.appendleft(QueueItem(1, "jid-<000001", 30, b'{"retry":25,"jid":"jid-\\u003c000001"}'))
    assert q[0] == QueueItem(1, "jid-<000001", 30, b'{"retry":25,"jid":"jid-\\u003c000001"}')
    q.pop()  # the last one
    assert [item.id for item in q] == [1]
    assert q.popleft().jid == "jid-<000001" and not q


def _bytes_per_job(m: Manager, store: SQLiteStorage | MemoryStorage, n: int) -> float:
    args = '["' + "x" * 96 + '"]'  # 100 bytes of args
    lines = [
        b'{"jid":"jid-%012d","jobtype":"Bench","args":%s}' % (i, args.encode()) for i in range(n)
    ]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for line in lines:
            m.push_bytes(line)
        store.flush()
        if isinstance(store, SQLiteStorage):
            store.fold()
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()


def test_a_queued_job_costs_some_5_bytes_with_sqlite(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    per_job = _bytes_per_job(m, store, 20_000)
    store.close()
    # Its id marshalled in a chunk, and the loose head's and tail's share (an id in a
    # deque was 36 bytes; a QueueItem with its jid and bytes took over 500).
    assert per_job < 20, per_job


def test_a_queued_job_costs_its_bytes_and_its_id_in_memory_storage():
    store = MemoryStorage()
    m = Manager(store, ManualClock(T0))
    per_job = _bytes_per_job(m, store, 20_000)
    # Some 255 bytes of JSON and 10 of marshalled id and length in a chunk (as loose
    # objects in deques: 330).
    assert per_job < 280, per_job


def test_bytes_read_ahead_serve_interleaved_queues_and_put_backs(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    for i in range(200):  # two queues' jobs interleaved in the database
        queue = "a" if i % 2 else "b"
        line = b'{"jid":"jid-%08d","jobtype":"T","args":[%d],"queue":"%s"}'
        assert m.push_bytes(line % (i, i, queue.encode())) is None
    store.flush()
    store.fold()
    first = m.fetch(["a"], "w1")  # reads ahead, jobs of "b" among them
    assert first is not None and first.jid == "jid-00000001"
    assert m.put_back(first)
    seen = []
    for _ in range(100):
        for queue in ("b", "a"):
            res = m.fetch([queue], "w1")
            assert res is not None
            assert json.loads(res.payload)["args"] == [int(res.jid[4:])]
            assert json.loads(res.payload)["queue"] == queue
            seen.append(int(res.jid[4:]))
            assert m.ack(res.jid)
        store.flush()
        if len(seen) % 50 == 0:
            store.fold()
    assert sorted(seen) == list(range(200))
    store.close()


class _CountingSQLite(SQLiteStorage):
    """Counts the queued jobs whose bytes are read back from storage."""

    reads = 0

    def queued_payload(self, eid: int) -> bytes:
        self.reads += 1
        return super().queued_payload(eid)


def test_queue_remove_reads_back_only_the_jobs_with_custom(tmp_path: Path):
    from werk.server._extension import Extension

    heard: list[tuple[str, str]] = []

    class Listener(Extension):
        def removed(self, jid: str, payload: bytes, how: str) -> None:
            heard.append((jid, how))

    store = _CountingSQLite(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0), extensions=[Listener()])
    for i in range(200):
        job: dict[str, object] = {"jid": f"jid-plain-{i:04d}", "jobtype": "T", "args": [i]}
        if i % 50 == 7:
            job["custom"] = {"track": 1}
        assert m.push_bytes(json.dumps(job).encode()) is None
    store.flush()
    store.fold()  # the bytes are in the database only
    admin.remove_queue(m, "default")
    assert sorted(jid for jid, _ in heard) == [f"jid-plain-{i:04d}" for i in (7, 57, 107, 157)]
    assert store.reads <= 4  # not 200: the queue's side table names the custom jobs
    store.flush()
    store.fold()
    assert m.fetch(["default"], "w1") is None
    store.close()


# -- JobQueue against a deque of QueueItem ----------------------------------------------


class _Source:
    """Gives queued jobs' bytes back by id, like a storage that keeps them."""

    def __init__(self) -> None:
        self.payloads: dict[int, bytes] = {}

    def queued_payload(self, eid: int) -> bytes:
        return self.payloads[eid]


def _job(eid: int, kind: int) -> QueueItem:
    """Job ``eid`` of a kind: plain, escaped jid, custom (with a "jid" of its own) or
    reserve_for; the bytes vary in length, down to a few bytes of args, and a rare one
    has a newline."""
    args = b"x" * (eid * 37 % 300)
    if kind == 1:
        jid = f"jid-<{eid}>"
        return QueueItem(
            eid, jid, 0, b'{"retry":25,"jid":"jid-\\u003c%d\\u003e","args":["%s"]}' % (eid, args)
        )
    if kind == 2:
        jid = f"jid-c{eid}"
        payload = b'{"retry":25,"custom":{"jid":"no"},"jid":"%s","args":["%s"]}' % (
            jid.encode(),
            args,
        )
        return QueueItem(eid, jid, 0, payload, True)
    jid = f"jid-{eid}"
    payload = b'{"retry":25,"jid":"%s","args":["%s"]}' % (jid.encode(), args)
    if eid % 1000 == 999:  # not canonical: a newline between tokens
        payload = payload.replace(b',"args"', b',\n"args"')
    return QueueItem(eid, jid, 600 if kind == 3 else 0, payload)


_OPS = st.one_of(
    st.tuples(st.just("push"), st.integers(1, 700), st.integers(0, 3)),
    st.tuples(st.just("popleft"), st.integers(1, 700)),
    st.tuples(st.just("appendleft"), st.integers(1, 3)),
    st.tuples(st.just("pop"), st.integers(1, 300)),
    st.tuples(st.just("remove"), st.integers()),
    st.tuples(st.just("getitem"), st.integers()),
    st.tuples(st.just("copy"), st.just(0)),
    st.tuples(st.just("clear"), st.just(0)),
)


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.lists(_OPS, max_size=30))
def test_job_queue_behaves_like_a_deque_of_items(with_source: bool, ops: list[tuple]):
    source = _Source()
    q = JobQueue(source if with_source else None)
    model: deque[QueueItem] = deque()
    copies: list[tuple[JobQueue, list[QueueItem]]] = []
    popped: list[QueueItem] = []
    next_id = 1
    for op, arg, *rest in ops:
        if op == "push":
            for _ in range(arg):
                item = _job(next_id, (next_id * rest[0]) % 4)
                source.payloads[item.id] = item.payload
                next_id += 1
                if next_id % 2:
                    q.append(item)
                else:
                    q.add(item.id, item.jid, item.reserve_for, item.payload, item.custom)
                model.append(item)
        elif op == "popleft":
            for _ in range(min(arg, len(model))):
                popped.append(q.popleft())
                assert popped[-1] == model.popleft()
            if not model:
                with pytest.raises(IndexError):
                    q.popleft()
        elif op == "appendleft":
            for _ in range(min(arg, len(popped))):
                item = popped.pop()
                q.appendleft(item)
                model.appendleft(item)
        elif op == "pop":
            for _ in range(min(arg, len(model))):
                q.pop()
                model.pop()
            if not model:
                with pytest.raises(IndexError):
                    q.pop()
        elif op == "remove":
            if model:
                item = model[arg % len(model)]
                q.remove(item)
                model.remove(item)
            with pytest.raises(ValueError):
                q.remove(_job(next_id + 1, 0))
        elif op == "getitem":
            if model:
                index = arg % (2 * len(model)) - len(model)  # negative ones too
                assert q[index] == model[index]
            with pytest.raises(IndexError):
                q[len(model)]
        elif op == "copy":
            copies.append((q.copy(), list(model)))
        else:
            q.clear()
            model.clear()
        assert len(q) == len(model) and bool(q) == bool(model)
        assert list(q) == list(model)
        assert sorted(q.custom_items()) == sorted(item for item in model if item.custom)
    for copy, items in copies:  # untouched by what the original went through
        assert list(copy) == items and len(copy) == len(items)


def _grown(with_source: bool, n: int) -> JobQueue:
    source = _Source()
    q = JobQueue(source if with_source else None)
    for eid in range(1, n + 1):
        item = _job(eid, eid % 4)
        source.payloads[eid] = item.payload
        q.append(item)
    return q


MUTATIONS = {
    "push": lambda q: q.append(_job(10_000, 0)),
    "popleft": lambda q: q.popleft(),
    "push and popleft": lambda q: (q.append(_job(10_000, 0)), q.popleft()),
    "popleft and put back": lambda q: q.appendleft(q.popleft()),
    "pop": lambda q: q.pop(),
    "remove": lambda q: q.remove(q[len(q) // 2]),
    "clear": lambda q: q.clear(),
}


@pytest.mark.parametrize("with_source", [False, True])
@pytest.mark.parametrize("size", [5, 300, 2000])  # one deque; head and tail; chunks
@pytest.mark.parametrize("where", [0, 1, 280, 1000])  # in the head, a chunk or the tail
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_queue_changed_while_iterated_ends_the_iteration(
    with_source: bool, size: int, where: int, mutation: str
):
    q = _grown(with_source, size)
    it = iter(q)
    for _ in range(min(where, size - 1) + 1):
        next(it)
    MUTATIONS[mutation](q)
    with pytest.raises(RuntimeError):
        next(it)


@pytest.mark.parametrize("with_source", [False, True])
def test_a_backlog_is_packed_and_comes_out_in_order(with_source: bool):
    q = _grown(with_source, 3000)
    assert len(q._chunks) >= 9  # all but some two chunks' worth packed
    assert [item.id for item in q] == list(range(1, 3001))
    assert [q.popleft().id for _ in range(3000)] == list(range(1, 3001))
    assert not q and not q._chunks and q._head_ids is q._tail_ids

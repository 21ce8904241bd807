"""What got +OK survives ``kill -9``: jobs, reservations, pauses, the three sets, counters.

Each test runs ``werk server`` as a real child process with SQLite storage, kills it with
SIGKILL, starts it again on the same data directory and checks what is there.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from tests.server.rawclient import Raw
from tests.server.serverproc import ServerProcess
from tests.servers import ServerFactory

import werk
from werk._protocol.resp import ErrorReply
from werk.server import ManualClock
from werk.server._manager import Manager
from werk.server._periodic import PeriodicTasks
from werk.server._storage import SQLiteStorage

pytestmark = pytest.mark.slow


def test_everything_acknowledged_survives_kill_9(tmp_path):
    with ServerProcess(tmp_path) as proc:
        with Raw("127.0.0.1", proc.port, wid="wid-dies") as c:
            for i in range(50):
                assert c.push(f"jid-durable-{i:04d}", args=[i]) == "OK"
            assert c.push("jid-paused-q01", queue="pq") == "OK"
            assert c.cmd("QUEUE PAUSE pq") == "OK"
            assert c.push("jid-later-0001", at="2999-01-01T00:00:00Z") == "OK"
            reserved = c.fetch()
            assert reserved["jid"] == "jid-durable-0000"
            failed = c.fetch()
            assert c.cmd(f'FAIL {{"jid":"{failed["jid"]}","message":"boom"}}') == "OK"
            c.push("jid-to-dead-01", retry=-1, queue="dq")
            dead = c.fetch("dq")
            assert c.cmd(f'FAIL {{"jid":"{dead["jid"]}"}}') == "OK"
            acked = c.fetch()
            assert c.cmd(f'ACK {{"jid":"{acked["jid"]}"}}') == "OK"
            before = c.info()["faktory"]
        proc.kill9()

    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        after = c.info()["faktory"]
        assert after["queues"] == before["queues"] == {"default": 47, "dq": 0, "pq": 1}
        assert after["sets"] == before["sets"]
        assert after["sets"] == {"dead": 1, "retries": 1, "scheduled": 1, "working": 1}
        assert after["total_processed"] == before["total_processed"] == 3
        assert after["total_failures"] == 2
        # The pause survived: the paused queue's job is not handed out.
        assert c.cmd("QUEUE LATENCY pq") is not None
        # FIFO order survived, and the reservation still holds the job fetched first.
        assert c.fetch()["jid"] == "jid-durable-0003"
        assert c.cmd(b'ACK {"jid":"jid-durable-0000"}') == "OK"
        assert c.info()["faktory"]["total_processed"] == 4
        assert "0 queued" not in "".join(proc.log)


def test_concurrent_pushes_from_many_connections_all_survive(tmp_path):
    acked: list[str] = []
    lock = threading.Lock()
    with ServerProcess(tmp_path) as proc:

        def pusher(n: int) -> None:
            with Raw("127.0.0.1", proc.port) as c:
                for i in range(100):
                    jid = f"jid-c{n:02d}-{i:04d}"
                    if c.push(jid) == "OK":
                        with lock:
                            acked.append(jid)

        threads = [threading.Thread(target=pusher, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        proc.kill9()
    assert len(acked) == 800
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    stored = {e.jid for e in store.load().entries}
    store.close()
    assert stored == set(acked)


def test_a_dead_workers_reservation_comes_back_after_restart(tmp_path):
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port, wid="w-dies") as c:
        c.push("jid-orphan-001", reserve_for=60)
        assert c.fetch()["jid"] == "jid-orphan-001"
        proc.kill9()
    # The worker and the server are gone; the reservation is on disk with its deadline.
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    (res,) = [e for e in store.load().entries if e.jid == "jid-orphan-001"]
    clock = ManualClock(res.since)
    manager = Manager(store, clock)
    tasks = PeriodicTasks(manager)
    assert "jid-orphan-001" in manager.reservations
    clock.set(res.score + 15)
    tasks.run_all_due()
    store.flush()
    assert len(manager.retries) == 1
    store.close()
    # ... and a restarted real server serves it from the retry set.
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        assert c.info()["faktory"]["sets"]["retries"] == 1
        assert c.cmd('MUTATE {"cmd":"requeue","target":"retries"}') == "OK"
        job = c.fetch()
        assert job["jid"] == "jid-orphan-001"
        assert job["failure"]["errtype"] == "ReservationExpired"


def test_sigterm_stops_gracefully_and_keeps_data(tmp_path):
    with ServerProcess(tmp_path) as proc:
        with Raw("127.0.0.1", proc.port) as c:
            c.push("jid-graceful-1")
        assert proc.terminate(signal.SIGTERM) == 0
        assert any("stopped" in line for line in proc.log)
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        assert c.fetch()["jid"] == "jid-graceful-1"


def test_startup_log_names_version_address_and_storage(tmp_path):
    with ServerProcess(tmp_path, env={"FAKTORY_PASSWORD": "pw-from-env"}) as proc:
        line = "".join(proc.log)
        assert "werk" in line and f"127.0.0.1:{proc.port}" in line
        assert str(tmp_path / "werk.sqlite3") in line and "password required" in line
        with pytest.raises(AssertionError, match="Invalid password"):
            Raw("127.0.0.1", proc.port, password="wrong")
        Raw("127.0.0.1", proc.port, password="pw-from-env").close()


def test_full_disk_answers_err_and_acknowledges_only_what_was_stored(tmp_path):
    acked, refused = [], []
    with ServerProcess(tmp_path, max_file_size=256 * 1024) as proc:
        with Raw("127.0.0.1", proc.port) as c:
            for i in range(400):
                jid = f"jid-full-{i:05d}"
                reply = c.push(jid, args=["x" * 2000])
                (acked if reply == "OK" else refused).append((jid, reply))
            assert acked and refused, "the disk never filled up"
            assert all(isinstance(r, ErrorReply) and "too large" in r.message for _, r in refused)
            # The server is still up and serves exactly what it stored.
            assert c.info()["faktory"]["queues"]["default"] == len(acked)
            # A FETCH needs a write too: refused, and the job stays queued. (Unless a fold
            # set the full journal aside just before: a fresh file has room under a
            # per-file size limit, and the FETCH is then served and stored.)
            fetched = c.cmd("FETCH default")
            if isinstance(fetched, ErrorReply):
                assert c.info()["faktory"]["queues"]["default"] == len(acked)
            else:
                assert json.loads(fetched)["jid"] == acked[0][0]
        proc.kill9()
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    stored = [e.jid for e in store.load().entries]
    store.close()
    assert sorted(stored) == [jid for jid, _ in acked]  # a reservation is stored after the rest


def test_a_full_database_loses_nothing_journaled(make_server, tmp_path):
    # The database refuses the fold; the journal keeps every acknowledged job meanwhile.
    srv = make_server(storage="sqlite", data_dir=tmp_path, extra={"max_pages": 40})
    with Raw(srv) as c:
        for i in range(200):
            assert c.push(f"jid-full-{i:05d}", args=["x" * 2000]) == "OK"
        assert c.info()["faktory"]["queues"]["default"] == 200
    srv.stop()
    store = SQLiteStorage(tmp_path / "werk.sqlite3")  # no page limit: the fold goes through
    stored = [e.jid for e in store.load().entries]
    store.close()
    assert stored == [f"jid-full-{i:05d}" for i in range(200)]
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    assert len(store.load().entries) == 200  # folded once, not twice
    store.close()


def test_stored_payloads_are_the_canonical_json(make_server, tmp_path):
    srv = make_server(storage="sqlite", data_dir=tmp_path)
    with Raw(srv) as c:
        c.push("jid-canonical1", args=[2.0, {"b": 1, "a": "<&>"}], custom={"z": 1, "a": 2})
    srv.stop()
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    (entry,) = store.load().entries
    store.close()
    job = json.loads(entry.payload)
    order = ["retry", "custom", "jid", "queue", "jobtype", "created_at", "enqueued_at", "args"]
    assert list(job) == order
    assert b'"args":[2,{"a":"\\u003c\\u0026\\u003e","b":1}]' in entry.payload


def test_mutate_clear_empties_one_set_and_stays_cleared_after_restart(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    # MUTATE clear is stored as one change for the whole set: the other sets must keep theirs.
    srv = make_server(storage="sqlite", data_dir=tmp_path)
    with werk.Client(srv.url) as client:
        for n in range(3):
            client.push("Dead", n, retry=-1)
            client.push("Retry", n, retry=5)
        for _ in range(6):
            job = client.fetch("default")
            assert job is not None
            client.fail(job.jid, "boom")
        assert (srv.info()["dead"], srv.info()["retries"]) == (3, 3)
        client.mutate(werk.Mutation.clear(werk.Target.DEAD))
    assert (srv.info()["dead"], srv.info()["retries"]) == (0, 3)
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path)
    assert (srv.info()["dead"], srv.info()["retries"]) == (0, 3)

"""Faktory's job semantics over real TCP, with time driven by a manual clock."""

from __future__ import annotations

import json
import time

import pytest
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.resp import ErrorReply
from werk._protocol.timefmt import to_epoch
from werk.server import EmbeddedServer, ManualClock

T0 = MANUAL_EPOCH  # a multiple of 60: periodic ticks fall on round numbers


def wait_blocked(server: EmbeddedServer) -> None:
    """Wait until a FETCH sent on some connection is blocked inside the server."""
    deadline = time.monotonic() + 5
    while not server.call(lambda: any(c.busy for c in server.server.connections)):
        assert time.monotonic() < deadline, "FETCH never blocked"
        time.sleep(0.001)


@pytest.fixture
def srv(make_server: ServerFactory) -> EmbeddedServer:
    """A server whose time stands still at T0 until ``srv.advance(seconds)``."""
    return make_server(clock=ManualClock(T0))


def test_default_retry_is_25_for_each_job_not_the_last_explicit_one(srv):
    with Raw(srv) as c:
        assert c.push("jid-explicit-3", retry=3) == "OK"
        assert c.push("jid-no-retry-1") == "OK"
        assert c.push("jid-null-retry", retry=None) == "OK"
        assert c.cmd(b'PUSHB [{"jid":"jid-bulk-nort","jobtype":"T","args":[]}]') == b"{}"
        got = {j["jid"]: j["retry"] for j in (c.fetch() for _ in range(4))}
    assert got == {
        "jid-explicit-3": 3,
        "jid-no-retry-1": 25,
        "jid-null-retry": 25,
        "jid-bulk-nort": 25,
    }


def test_fail_schedules_retry_with_faktory_backoff_then_requeues(srv):
    with Raw(srv) as c:
        c.push("jid-retry-0001", retry=2)
        assert c.fetch()["jid"] == "jid-retry-0001"
        assert c.cmd(b'FAIL {"jid":"jid-retry-0001","errtype":"E","message":"m1"}') == "OK"
        retries = srv.call(lambda: srv.manager.retries.ordered())
        assert len(retries) == 1
        delay = retries[0].score - T0
        assert 15 <= delay <= 44  # c=0: 0**4 + 15 + rand(30) * 1
        stored = json.loads(retries[0].payload)
        assert stored["failure"]["retry_count"] == 0 and stored["failure"]["remaining"] == 2
        assert stored["failure"]["failed_at"] and stored["failure"]["next_at"]
        srv.advance(delay - 1)
        assert srv.info()["retries"] == 1  # not due yet
        srv.advance(10)  # the next 5 s tick after next_at moves it back
        job = c.fetch()
        assert job["jid"] == "jid-retry-0001" and job["failure"]["message"] == "m1"
        assert to_epoch(job["enqueued_at"]) > T0 + delay - 1  # refreshed on re-entry
        assert c.cmd(b'FAIL {"jid":"jid-retry-0001","message":"m2"}') == "OK"
        second = srv.call(lambda: srv.manager.retries.ordered())[0]
        assert 16 <= second.score - srv.clock.now() <= 74  # c=1
        srv.advance(80)
        job = c.fetch()
        assert job["failure"]["retry_count"] == 1
        c.cmd(b'FAIL {"jid":"jid-retry-0001","message":"m3"}')
    info = srv.info()
    assert (info["retries"], info["dead"]) == (0, 1)  # retry_count 2 >= retry 2: dead
    assert (info["processed"], info["failures"]) == (3, 3)


def test_retry_zero_discards_and_negative_goes_straight_to_dead(srv):
    with Raw(srv) as c:
        c.push("jid-retry-zero", retry=0)
        c.push("jid-retry-neg1", retry=-1)
        for _ in range(2):
            jid = c.fetch()["jid"]
            assert c.cmd(f'FAIL {{"jid":"{jid}"}}') == "OK"
    info = srv.info()
    assert (info["retries"], info["dead"], info["failures"]) == (0, 1, 2)


def test_scheduled_job_arrives_on_the_first_tick_after_its_time(srv):
    with Raw(srv) as c:
        at = "2027-01-15T08:00:03Z"  # T0 + 3 s
        assert to_epoch(at) == T0 + 3
        assert c.push("jid-sched-0001", at=at) == "OK"
        assert srv.info()["scheduled"] == 1
        srv.advance(4.9)
        assert srv.info()["scheduled"] == 1
        srv.advance(0.2)  # T0 + 5.1: the 5 s tick ran
        job = c.fetch()
        assert job["at"] == at and "enqueued_at" in job


def test_expired_reservation_becomes_a_retry_and_late_ack_is_a_noop(srv):
    with Raw(srv) as c:
        c.push("jid-reserve-01", reserve_for=1)  # raised to the 60 s minimum
        c.fetch()
        srv.advance(59)
        assert srv.info()["working"] == 1
        srv.advance(16)  # past 60 s and a 15 s tick
        info = srv.info()
        assert (info["working"], info["retries"]) == (0, 1)
        assert (info["processed"], info["failures"]) == (1, 1)
        stored = json.loads(srv.call(lambda: srv.manager.retries.ordered())[0].payload)
        assert stored["failure"]["errtype"] == "ReservationExpired"
        assert stored["failure"]["message"] == "Faktory job reservation expired"
        assert c.cmd(b'ACK {"jid":"jid-reserve-01"}') == "OK"
        assert c.cmd(b'FAIL {"jid":"jid-reserve-01"}') == ErrorReply(
            "ERR", "Job not found jid-reserve-01"
        )
    assert srv.info()["processed"] == 1  # the late ACK counted nothing


def test_reservation_defaults_to_1800_seconds(srv):
    with Raw(srv) as c:
        c.push("jid-default-rf")
        c.fetch()
        (res,) = srv.call(lambda: list(srv.manager.reservations.values()))
        assert res.score - res.since == 1800


def test_silent_worker_is_reaped_and_its_connections_closed(srv):
    worker = Raw(srv, wid="wid-silent")
    other = Raw(srv, wid="wid-beating")
    for _ in range(5):
        srv.advance(15)
        assert other.cmd(b'BEAT {"wid":"wid-beating"}') == "OK"
    assert worker.closed_by_server()
    assert srv.info()["workers"] == 1
    assert other.cmd(b'BEAT {"wid":"wid-silent"}') == ErrorReply("ERR", "unknown worker wid-silent")
    other.close()


def test_quiet_is_looked_up_by_wid_on_every_connection(srv):
    with Raw(srv, wid="wid-two") as first, Raw(srv, wid="wid-two") as second:
        assert first.cmd(b'BEAT {"wid":"wid-two","current_state":"quiet"}') == b'{"state":"quiet"}'
        assert second.push("jid-quiet-0001") == "OK"
        second.send(b"FETCH default\r\n")
        wait_blocked(srv)
        srv.advance(2.1)
        assert second.read() is None  # the real server would hand the job to this one
    assert srv.info()["queues"] == {"default": 1}


def test_dead_jobs_are_purged_after_180_days(srv):
    with Raw(srv) as c:
        c.push("jid-dead-00001", retry=-1)
        c.fetch()
        c.cmd(b'FAIL {"jid":"jid-dead-00001"}')
    srv.advance(179 * 86400)
    assert srv.info()["dead"] == 1
    srv.advance(2 * 86400)
    assert srv.info()["dead"] == 0


def test_blocked_fetch_wakes_at_once_and_respects_queue_order(srv):
    with Raw(srv) as waiting, Raw(srv) as producer:
        waiting.send(b"FETCH high low\r\n")
        wait_blocked(srv)
        assert producer.push("jid-wake-low1", queue="low") == "OK"
        assert waiting.read() is not None
        producer.push("jid-prio-low1", queue="low")
        producer.push("jid-prio-high", queue="high")
        assert waiting.fetch("high", "low")["jid"] == "jid-prio-high"


def test_paused_queue_accepts_pushes_and_survives_in_info(srv):
    with Raw(srv) as c:
        c.push("jid-paused-001", queue="pq")
        assert c.cmd("QUEUE PAUSE pq") == "OK"
        c.send(b"FETCH pq\r\n")
        wait_blocked(srv)
        srv.advance(2.5)
        assert c.read() is None
        assert c.cmd("QUEUE RESUME pq") == "OK"
        assert c.fetch("pq")["jid"] == "jid-paused-001"


@pytest.mark.slow
def test_fetch_on_empty_queues_waits_two_real_seconds(make_server):
    with Raw(make_server()) as c:
        start = time.monotonic()
        assert c.cmd("FETCH nothing-here") is None
        assert 1.9 <= time.monotonic() - start < 3.5


def test_delete_queue_jobs_keeps_the_rest_in_order_and_is_stored(tmp_path):
    from werk.server import _admin as admin
    from werk.server._manager import Manager
    from werk.server._storage import SQLiteStorage

    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    for i in range(5):
        assert m.push_bytes(b'{"jid":"jid-del-%04d","jobtype":"T","args":[]}' % i) is None
    doomed = ["jid-del-0001", "jid-del-0003", "jid-not-there"]
    assert admin.delete_queue_jobs(m, "default", doomed) == 2
    assert admin.delete_queue_jobs(m, "default", []) == 0
    assert admin.delete_queue_jobs(m, "no-such-queue", ["jid-del-0000"]) == 0
    kept = ["jid-del-0000", "jid-del-0002", "jid-del-0004"]
    assert [item.jid for item in m.queues["default"]] == kept
    store.close()
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    assert [item.jid for item in m.queues["default"]] == kept
    assert m.fetch(["default"], "").jid == "jid-del-0000"
    store.close()


async def test_commands_during_shutdown_get_shutdown_in_progress_and_the_socket_closes():
    import asyncio

    # Not make_server: the server runs on this test's loop, so the test can await its stop().
    async with EmbeddedServer(storage="memory") as srv:
        host, port = srv.server.address
        conns = []
        for wid in ("", "wid-shutdown-1"):
            reader, writer = await asyncio.open_connection(host, port)
            assert (await reader.readline()).startswith(b"+HI ")
            hello = b'{"v":2,"wid":"%s"}' % wid.encode() if wid else b'{"v":2}'
            writer.write(b"HELLO " + hello + b"\r\n")
            assert await reader.readline() == b"+OK\r\n"
            conns.append((reader, writer))
        writer.write(b'PUSH {"jid":"jid-before-stop","jobtype":"T","args":[]}\r\n')
        assert await reader.readline() == b"+OK\r\n"

        stopping = asyncio.ensure_future(srv.server.stop())
        await asyncio.sleep(0)  # stop() has begun: no new connections, commands refused
        assert srv.server.stopping and not stopping.done()
        for (reader, writer), line in zip(conns, (b"INFO", b"FETCH default"), strict=True):
            writer.write(line + b"\r\n")
            assert await reader.readline() == b"-ERR shutdown in progress\r\n"
            assert await reader.read() == b""  # closed by the server
            writer.close()
        await stopping
        # The refused FETCH took nothing: the job is still queued.
        assert len(srv.manager.queues["default"]) == 1

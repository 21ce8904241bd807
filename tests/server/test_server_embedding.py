"""The embedding API users' test suites rely on: fixtures, thread mode, asyncio mode."""

from __future__ import annotations

import asyncio

from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH

import werk
from werk.server import EmbeddedServer, ManualClock
from werk.server._manager import Manager
from werk.server._periodic import PeriodicTasks
from werk.server._storage import MemoryStorage


def test_fixture_serves_werk_client(faktory_server):
    with werk.Client(faktory_server.url) as client:
        jid = client.push("Resize", 42)
        job = client.fetch("default")
        assert job is not None and job.jid == jid and job.args == [42]
        client.ack(jid)
    assert faktory_server.info()["processed"] == 1


def test_password_fixture(faktory_server_password):
    assert faktory_server_password.password == "test-password"
    url = faktory_server_password.url_with_password
    assert url.startswith("tcp://:test-password@127.0.0.1:")
    with werk.Client(url) as client:
        client.push("Resize", 1)
    assert faktory_server_password.info()["queues"] == {"default": 1}


def test_manual_server_fixture_moves_time(manual_server):
    with Raw(manual_server) as c:
        c.push("jid-manual-001", reserve_for=60)
        c.fetch()
    manual_server.advance(75)
    assert manual_server.info()["retries"] == 1


async def test_async_with_runs_on_the_callers_loop():
    async with EmbeddedServer() as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        assert await reader.readline() == b'+HI {"v":2}\r\n'
        writer.write(b'HELLO {}\r\nPUSH {"jid":"jid-async-0001","jobtype":"T","args":[]}\r\n')
        assert await reader.readline() == b"+OK\r\n"
        assert await reader.readline() == b"+OK\r\n"
        assert srv.manager.queue_sizes() == {"default": 1}
        writer.close()


def test_sqlite_embedded_server_keeps_data_across_restarts(make_server, tmp_path):
    srv = make_server(storage="sqlite", data_dir=tmp_path)
    with Raw(srv) as c:
        c.push("jid-restart-01")
    srv.stop()
    with Raw(make_server(storage="sqlite", data_dir=tmp_path)) as c:
        assert c.fetch()["jid"] == "jid-restart-01"


def test_manager_alone_runs_periodic_tasks_on_a_manual_clock():
    clock = ManualClock(MANUAL_EPOCH)
    m = Manager(MemoryStorage(), clock)
    tasks = PeriodicTasks(m)
    assert m.push_bytes(b'{"jid":"jid-alone-001","jobtype":"T","args":[],"retry":1}') is None
    res = m.fetch(["default"], wid="")
    assert res is not None and m.fail(res.jid, "E", "boom", None) is None
    clock.advance(45)
    tasks.run_all_due()
    assert m.queue_sizes() == {"default": 1}
    assert tasks.stats()["Retries"]["enqueued"] == 1

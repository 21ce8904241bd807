"""Both clients end to end against werk's embedded server on a real socket.

What must not be lost: every job a call reported as pushed is on the server; a job that
raised before sending is not; a FAILed job keeps its error and backtrace.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from tests.client.conftest import MakeClient

import werk
from werk import Mutation, Target
from werk._errors import JobNotFoundError
from werk._protocol import command_lines as commands
from werk._protocol.jsonc import loads
from werk._protocol.resp import ErrorReply
from werk.server import EmbeddedServer


def boom() -> None:
    raise KeyError("missing thing")


def test_push_fetch_ack(faktory_server: Any, make_client: MakeClient) -> None:
    client = make_client(faktory_server.url, wid="wid-e2e", labels=["python"])
    jid = client.push("Resize", 42, "large", queue="images", retry=3, custom={"k": "v"})
    assert faktory_server.info()["queues"] == {"images": 1}
    job = client.fetch("critical", "images")
    assert isinstance(job, werk.Job)
    assert (job.jid, job.jobtype, job.args, job.queue, job.retry) == (
        jid,
        "Resize",
        [42, "large"],
        "images",
        3,
    )
    assert job.custom == {"k": "v"} and job.enqueued_at and job.created_at
    assert faktory_server.info()["working"] == 1
    client.ack(job.jid)
    info = client.info()
    assert info["faktory"]["total_processed"] == 1
    assert faktory_server.info()["working"] == 0
    client.close()


def test_execute_many_acks_and_fetches_in_one_round_trip(
    faktory_server: Any, make_client: MakeClient
) -> None:
    """A worker's round trip: every reply comes back in order, an error reply among them is a
    value and the replies after it are still read; no job is left reserved."""
    client = make_client(faktory_server.url, wid="wid-many")
    assert client.execute_many([]) == []
    first, second = client.push("A", 1), client.push("A", 2)
    job = client.fetch()
    assert job is not None and job.jid == first
    fetch = commands.fetch(["default"])
    ack, fetched = client.execute_many([commands.ack(first), fetch], blocking=True)
    assert ack == "OK"
    assert loads(fetched)["jid"] == second
    again, failed, info = client.execute_many(
        [commands.ack(first), commands.fail(first, "E", "gone"), commands.info()]
    )
    assert again == "OK"  # an ACK of an unknown jid is accepted
    assert isinstance(failed, ErrorReply)
    assert isinstance(failed.to_exception(), JobNotFoundError)
    assert "faktory" in loads(info)
    failed, ack = client.execute_many([commands.fail(second, "Boom", "m"), commands.ack(second)])
    assert failed == "OK" and ack == "OK"
    state = faktory_server.info()
    assert (state["working"], state["retries"], state["queues"].get("default")) == (0, 1, 0)


def test_fail_keeps_errtype_message_and_backtrace(
    faktory_server: Any, make_client: MakeClient
) -> None:
    client = make_client(faktory_server.url)
    client.push(werk.Job("Flaky", [1], backtrace=2))
    job = client.fetch()
    assert job is not None
    try:
        boom()
    except KeyError as exc:
        client.fail(job, exc)
    with pytest.raises(werk.JobNotFoundError):
        client.fail(job.jid, "again")
    assert faktory_server.info()["retries"] == 1
    client.mutate(Mutation.requeue(Target.RETRIES).jids(job.jid))
    again = client.fetch("default")
    assert again is not None and again.failure is not None
    assert again.failure.errtype == "KeyError"
    assert again.failure.message == "'missing thing'"
    assert len(again.failure.backtrace) == 2  # capped by the job's backtrace field
    assert "in boom" in again.failure.backtrace[0]  # innermost frame first
    assert again.retry_count == 1
    client.ack(again.jid)


def test_bulk_push_in_chunks(faktory_server: Any, make_client: MakeClient) -> None:
    client = make_client(faktory_server.url)
    jobs = [werk.Job("Bulk", [n], queue="bulk") for n in range(2500)]
    assert client.push_bulk(jobs) == {}
    assert faktory_server.info()["queues"] == {"bulk": 2500}
    first = client.fetch("bulk")
    assert first is not None and first.jid == jobs[0].jid


def test_rejected_jobs_are_never_stored(faktory_server: Any, make_client: MakeClient) -> None:
    client = make_client(faktory_server.url)
    with pytest.raises(werk.JobValidationError):
        client.push("Resize", 1, queue="no spaces allowed")
    with pytest.raises(werk.JobValidationError):
        client.push_bulk([werk.Job("A", [1]), {"jobtype": "B", "reserve_for": 86401}])
    info = faktory_server.info()
    assert info["queues"] == {} and info["scheduled"] == 0


def test_scheduled_push(faktory_server: Any, make_client: MakeClient) -> None:
    client = make_client(faktory_server.url)
    client.push("Later", at=timedelta(hours=1))
    client.push("Later", at="2099-01-01T00:00:00+02:00")
    assert faktory_server.info()["scheduled"] == 2
    client.mutate(Mutation.clear(Target.SCHEDULED))
    assert faktory_server.info()["scheduled"] == 0


def test_queue_commands(faktory_server: Any, make_client: MakeClient) -> None:
    client = make_client(faktory_server.url)
    client.push("A", queue="pq")
    client.push("A", queue="oq")
    client.queue_pause("pq")
    job = client.fetch("pq", "oq")  # the paused queue is skipped
    assert job is not None and job.queue == "oq"
    client.queue_resume("*")
    latency = client.queue_latency("pq", "nosuch")
    assert set(latency) == {"pq", "nosuch"} and latency["nosuch"] == 0
    assert isinstance(latency["pq"], float)
    with pytest.raises(werk.LocalProtocolError):
        client.queue_latency("*")
    client.queue_remove("pq")
    assert "pq" not in faktory_server.info()["queues"]
    client.flush()
    assert faktory_server.info()["queues"] in ({}, {"oq": 0})


def test_mutate_kill_and_requeue(faktory_server: Any, make_client: MakeClient) -> None:
    client = make_client(faktory_server.url)
    jid = client.push("Doomed", retry=5)
    job = client.fetch()
    assert job is not None
    client.fail(job, "nope")
    client.mutate(Mutation.kill(Target.RETRIES).jobtype("Doomed"))
    assert faktory_server.info()["dead"] == 1
    client.mutate(Mutation.requeue(Target.DEAD).matching("*Doomed*"))
    back = client.fetch()
    assert back is not None and back.jid == jid
    client.ack(jid)


def test_beat(faktory_server: Any, make_client: MakeClient) -> None:
    client = make_client(faktory_server.url, wid="wid-beat-e2e", labels=["python"])
    assert client.beat(rss_kb=1024) is None
    assert client.beat("quiet") == "quiet"
    assert client.beat() == "quiet"
    assert client.beat("terminate") == "terminate"


def test_password(faktory_server_password: Any, make_client: MakeClient) -> None:
    good = make_client(faktory_server_password.url_with_password)
    assert "faktory" in good.info()
    also = make_client(faktory_server_password.url, password=faktory_server_password.password)
    also.push("A")
    with pytest.raises(werk.AuthenticationError, match="Invalid password"):
        make_client(faktory_server_password.url, password="wrong").push("A")
    with pytest.raises(werk.AuthenticationError):
        make_client(faktory_server_password.url).push("A")
    assert faktory_server_password.info()["queues"] == {"default": 1}


def test_enterprise_commands_say_so(make_client: MakeClient) -> None:
    # werk's server serves batches and tracking; one without its extensions answers as
    # the open-source Faktory does.
    with EmbeddedServer(extensions=[]) as srv:
        client = make_client(srv.url)
        with pytest.raises(werk.EnterpriseOnlyError):
            client.batch_new(description="nightly", success=werk.Job("Done"))
        with pytest.raises(werk.EnterpriseOnlyError):
            client.track_get("0123456789abcdef")
        assert "faktory" in client.info()  # the connection is still fine


def test_reconnects_after_the_server_drops_it(faktory_server: Any, make_client: MakeClient) -> None:
    client = make_client(faktory_server.url)
    client.push("A")
    with pytest.raises(werk.ConnectionClosedError):
        client.execute(b"END\r\n")  # the server hangs up without a reply
    assert not client.connected
    client.push("B")  # a new connection, transparently
    assert faktory_server.info()["queues"] == {"default": 2}


def test_pool_under_threads(faktory_server: Any) -> None:
    with werk.ClientPool(faktory_server.url, size=4) as pool:

        def work(base: int) -> None:
            for n in range(50):
                pool.push("Pooled", base + n)

        threads = [threading.Thread(target=work, args=(i * 100,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert faktory_server.info()["queues"] == {"default": 400}
    assert faktory_server.info()["connections"] <= 4


async def test_async_pipelining(faktory_server: Any) -> None:
    async with werk.AsyncClient(faktory_server.url) as client:
        jids = await asyncio.gather(*(client.push("Piped", n) for n in range(500)))
        assert len(set(jids)) == 500
        job, info = await asyncio.gather(client.fetch(), client.info())
        assert job is not None and job.jid == jids[0]
        assert info["faktory"]["queues"]["default"] == 499
    assert faktory_server.info()["queues"] == {"default": 499}

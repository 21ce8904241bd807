"""Batches from the client: ``client.batch(...)`` as a context manager (both flavours),
typed job functions joining the current batch, and the typed STATUS / TRACK GET replies,
on the embedded server over real TCP."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

import werk
from werk import BatchStatus, CallbackState, JobTrack, TrackState
from werk.client import current_bid
from werk.server import EmbeddedServer


def fetch_all(client: werk.Client, n: int, *queues: str) -> list[werk.Job]:
    jobs = []
    for _ in range(n):
        job = client.fetch(*queues)
        assert job is not None
        jobs.append(job)
    return jobs


def test_members_get_the_bid_and_a_clean_exit_commits(manual_server: EmbeddedServer) -> None:
    with werk.Client(manual_server.url) as client:
        with client.batch(
            description="thumbnails", success=werk.Job("Done", [1], queue="cb")
        ) as batch:
            assert batch.bid is not None and batch.bid.startswith("b-")
            assert current_bid() == batch.bid
            batch.push("Resize", 1)
            batch.push(werk.Job("Resize", [2]))
            bulk = [werk.Job("Resize", [3]), {"jobtype": "Resize", "args": [4]}]
            assert batch.push_bulk(bulk) == {}
            status = client.batch_status(batch.bid)
            assert (status.total, status.pending) == (4, 4)
        assert current_bid() is None
        assert batch.committed
        members = fetch_all(client, 4)
        assert {tuple(j.args) for j in members} == {(1,), (2,), (3,), (4,)}
        assert all(j.custom == {"bid": batch.bid} for j in members)
        for job in members:
            client.ack(job)
        callback = client.fetch("cb")
        assert callback is not None and callback.jobtype == "Done"
        assert callback.custom is not None and callback.custom["_bid"] == batch.bid
        client.ack(callback)
        status = batch.status()
        assert status.success_state is CallbackState.SUCCEEDED
        assert (status.total, status.pending, status.failed) == (4, 0, 0)
        assert status.description == "thumbnails"


def test_a_block_that_raises_does_not_commit(manual_server: EmbeddedServer) -> None:
    with werk.Client(manual_server.url) as client:
        with pytest.raises(KeyError), client.batch(success=werk.Job("Done", queue="cb")) as batch:
            batch.push("Resize", 1)
            raise KeyError("boom")
        assert not batch.committed and current_bid() is None
        member = client.fetch()
        assert member is not None  # members already pushed still run
        client.ack(member)
        status = client.batch_status(batch.bid or "")
        assert (status.pending, status.success_state) == (0, CallbackState.PENDING)
        assert not manual_server.info()["queues"].get("cb")  # never committed: no callback
        # Reopening and committing it finishes it after all.
        with client.reopen_batch(batch.bid or "") as again:
            assert again.bid == batch.bid
        assert client.batch_status(batch.bid or "").success_state is CallbackState.ENQUEUED


def test_an_unknown_bid_and_a_batch_without_callbacks_are_refused(
    manual_server: EmbeddedServer,
) -> None:
    with werk.Client(manual_server.url) as client:
        with pytest.raises(werk.ServerError, match="no such batch b-nope"):
            client.reopen_batch("b-nope").__enter__()
        with pytest.raises(werk.ServerError, match="success or complete callback"):
            client.batch(description="no callbacks").__enter__()
        assert current_bid() is None
        with pytest.raises(werk.JobValidationError, match="complete"):
            client.batch(complete="Done")
        with client.batch(success=werk.Job("Done")) as batch:
            with pytest.raises(werk.JobValidationError, match="names batch"):
                batch.push("A", custom={"bid": "b-other"})
            with pytest.raises(werk.JobValidationError, match="push inside"):
                client.batch(success=werk.Job("X")).push("A")
        assert batch.status().total == 0


def test_reopen_adds_members(manual_server: EmbeddedServer) -> None:
    with werk.Client(manual_server.url) as client:
        with client.batch(complete=werk.Job("Report", queue="cb")) as batch:
            batch.push("A", 1)
        bid = batch.bid or ""
        with client.reopen_batch(bid) as again:
            again.push("A", 2)
            with pytest.raises(werk.ConfigurationError, match="already running"), again:
                pass
        with batch:  # the same object again: reopened, not a new batch
            assert batch.bid == bid and not batch.committed
            batch.push("A", 3)
        assert batch.committed
        assert client.batch_status(bid).total == 3
        for job in fetch_all(client, 3):
            assert job.custom == {"bid": bid}
            client.ack(job)
        assert client.batch_status(bid).complete_state is CallbackState.ENQUEUED


def test_a_child_batch_names_its_parent(manual_server: EmbeddedServer) -> None:
    with werk.Client(manual_server.url) as client:
        with client.batch(success=werk.Job("All", queue="cb")) as parent:
            with parent.child(description="step", success=werk.Job("Step", queue="cb")) as child:
                assert current_bid() == child.bid
                child.push("A")
            assert current_bid() == parent.bid
        status = child.status()
        assert status.parent_bid == parent.bid and status.description == "step"
        assert parent.status().parent_bid is None
        client.ack(fetch_all(client, 1)[0])
        step = client.fetch("cb")
        assert step is not None and step.jobtype == "Step"
        assert step.custom is not None and step.custom["_pbid"] == parent.bid
        assert not manual_server.info()["queues"].get("cb")  # the parent waits for the child
        client.ack(step)
        done = client.fetch("cb")
        assert done is not None and done.jobtype == "All"


def test_typed_job_functions_join_the_current_batch(manual_server: EmbeddedServer) -> None:
    app = werk.App(manual_server.url)

    @app.job(queue="images")
    def resize(image_id: int) -> None: ...

    @app.job(queue="cb")
    def notify(user_id: int) -> None: ...

    with app, werk.Client(manual_server.url) as client:
        resize.push(0)  # outside any batch
        with client.batch(success=notify.to_job(7), complete=notify) as batch:
            resize.push(1)
            resize.with_options(custom={"bid": batch.bid}).push(2)
            seen: list[str | None] = []
            thread = threading.Thread(target=lambda: seen.append(current_bid()))
            thread.start()
            thread.join()
            assert seen == [None]  # a thread started in the block does not inherit it
        jobs = {tuple(j.args): j for j in fetch_all(client, 3, "images")}
        assert jobs[(0,)].custom is None
        assert jobs[(1,)].custom == {"bid": batch.bid}
        assert jobs[(2,)].custom == {"bid": batch.bid}
        assert batch.status().total == 2
        for args in ((1,), (2,)):
            client.ack(jobs[args])
        complete = client.fetch("cb")
        assert complete is not None and complete.args == [] and complete.jobtype == "notify"


def test_the_asyncio_mirror(manual_server: EmbeddedServer) -> None:
    app = werk.App(manual_server.url)

    @app.job
    def resize(image_id: int) -> None: ...

    async def main() -> tuple[str | None, str | None, str | None]:
        async with werk.AsyncClient(manual_server.url) as client:
            async with client.batch(complete=werk.Job("Report", queue="cb")) as batch:
                await asyncio.gather(*(batch.push("Resize", n) for n in range(3)))
                await batch.push_bulk([werk.Job("Resize", [9])])

                async def in_a_task() -> str | None:
                    return current_bid()

                inherited = await asyncio.create_task(in_a_task())
                await asyncio.to_thread(resize.push, 10)  # the context goes along
            with pytest.raises(RuntimeError):
                async with client.batch(success=werk.Job("Never")) as failed:
                    await failed.push("Resize", 11)
                    raise RuntimeError
            async with (
                client.reopen_batch(batch.bid or "") as again,
                again.child(success=werk.Job("Child")) as child,
            ):
                await child.push("Resize", 12)
            status = await batch.status()
            assert status.total == 5
            assert (await child.status()).parent_bid == batch.bid
            assert (await client.batch_status(failed.bid or "")).total == 1
            return batch.bid, inherited, current_bid()

    bid, inherited, after = asyncio.run(main())
    assert inherited == bid and after is None
    with werk.Client(manual_server.url) as client:
        jobs = fetch_all(client, 7)
        assert sum(j.custom == {"bid": bid} for j in jobs) == 5
        assert [j.args for j in jobs if j.custom and j.custom["bid"] != bid] == [[11], [12]]
    app.close()


# -- the typed replies, from the bytes Faktory Enterprise sends ------------------------------

ENT_STATUS = (
    b'{"bid":"b-W5uwOl0DNxfZyg","description":"Import images for user 1234",'
    b'"created_at":"2025-01-02T03:04:05.123456789Z","complete_st":"","success_st":"1",'
    b'"total":3,"pending":1,"failed":1}'
)


def test_batch_status_reads_the_enterprise_shape(manual_server: EmbeddedServer) -> None:
    status = BatchStatus.from_dict(werk._protocol.jsonc.loads(ENT_STATUS))
    assert status == BatchStatus(
        bid="b-W5uwOl0DNxfZyg",
        total=3,
        pending=1,
        failed=1,
        complete_state=CallbackState.PENDING,
        success_state=CallbackState.ENQUEUED,
        description="Import images for user 1234",
        parent_bid=None,
        created_at=datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
    )
    assert (status.succeeded, status.success_fired, status.complete_fired) == (2, True, False)
    assert status.progress == pytest.approx(2 / 3)
    # Nulls (the Haskell client's peers), missing keys and extra keys.
    sparse = BatchStatus.from_dict(
        {"bid": "b-1", "parent_bid": None, "description": None, "complete_st": None, "x": 1}
    )
    assert sparse == BatchStatus(bid="b-1")
    assert sparse.raw["x"] == 1 and sparse.progress == 1.0 and sparse.created_at is None
    assert BatchStatus.from_dict({"bid": "b-2", "parent_bid": "b-1"}).parent_bid == "b-1"
    for bad in ({"total": "3"}, {"success_st": "3"}, {"created_at": "yesterday"}, {"bid": 1}):
        with pytest.raises(werk.RemoteProtocolError):
            BatchStatus.from_dict(bad)


def test_job_track_reads_the_enterprise_shape() -> None:
    loads = werk._protocol.jsonc.loads
    unknown = JobTrack.from_dict(
        loads(b'{"jid":"f7APFzrS2RZi9eaA","state":"unknown","updated_at":""}')
    )
    assert unknown == JobTrack(jid="f7APFzrS2RZi9eaA", state=TrackState.UNKNOWN)
    full = JobTrack.from_dict(
        loads(
            b'{"jid":"f7APFzrS2RZi9eaA","desc":"Calculating...","state":"working",'
            b'"updated_at":"2025-01-02T03:04:05.123456789Z","percent":12}'
        )
    )
    assert (full.state, full.percent, full.desc, full.finished) == (
        TrackState.WORKING,
        12,
        "Calculating...",
        False,
    )
    assert full.updated_at == datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    nulls = JobTrack.from_dict({"jid": "j", "state": "success", "percent": None, "desc": None})
    assert (nulls.percent, nulls.desc, nulls.finished) == (None, None, True)
    with pytest.raises(werk.RemoteProtocolError, match="state"):
        JobTrack.from_dict({"jid": "j", "state": "sleeping"})


def test_track_set_and_get_over_the_wire(manual_server: EmbeddedServer) -> None:
    with werk.Client(manual_server.url) as client:
        jid = client.push("Export", custom={"track": 1})
        assert client.track_get(jid).state is TrackState.ENQUEUED
        client.track_set(jid, percent=40, description="halfway-ish")
        track = client.track_get(jid)
        assert (track.jid, track.percent, track.desc) == (jid, 40, "halfway-ish")
        assert track.updated_at is not None and track.updated_at.tzinfo is not None
        assert client.track_get("0123456789abcdef") == JobTrack(jid="0123456789abcdef")


def test_batch_status_over_the_wire_matches_the_enterprise_keys(
    manual_server: EmbeddedServer,
) -> None:
    # The raw reply keeps every key the server sent; the typed fields read the same ones.
    with werk.Client(manual_server.url) as client:
        with client.batch(description="d", success=werk.Job("S")) as batch:
            batch.push("A")
        raw: Any = client.execute(f"BATCH STATUS {batch.bid}\r\n".encode())
        status = client.batch_status(batch.bid or "")
        assert dict(status.raw) == werk._protocol.jsonc.loads(raw)
        assert status.created_at is not None


def test_pools_hold_one_client_for_a_batch_and_give_it_back(
    manual_server: EmbeddedServer,
) -> None:
    with werk.ClientPool(manual_server.url, size=1, acquire_timeout=0) as pool:
        with pool.batch(success=werk.Job("Done", queue="cb")) as batch:
            batch.push("Resize", 1)
            with pytest.raises(werk.NetworkTimeout):  # the pool's only client is the batch's
                pool.push("Resize", 0)
        with pool.reopen_batch(batch.bid or "") as again:
            again.push("Resize", 2)
        with pytest.raises(RuntimeError), pool.batch(complete=werk.Job("Never")) as failed:
            failed.push("Resize", 3)
            raise RuntimeError
        pool.push("Resize", 4)  # given back after the failed block too

    async def main() -> str | None:
        async with werk.AsyncClientPool(manual_server.url, size=1) as apool:
            async with apool.batch(success=werk.Job("Done", queue="cb")) as abatch:
                await abatch.push("Resize", 5)
            async with apool.reopen_batch(abatch.bid or "") as aagain:
                await aagain.push("Resize", 6)
            return abatch.bid

    abid = asyncio.run(main())
    assert batch.committed and not failed.committed
    with werk.Client(manual_server.url) as client:
        assert (client.batch_status(batch.bid or "").total, batch.status().pending) == (2, 2)
        assert client.batch_status(failed.bid or "").total == 1
        assert client.batch_status(abid or "").total == 2
        jobs = fetch_all(client, 6)
        assert sorted(j.args[0] for j in jobs) == [1, 2, 3, 4, 5, 6]

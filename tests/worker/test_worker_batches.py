"""Batches and tracking from inside running jobs, end to end: a real Worker on the
embedded server, callbacks firing, child batches and reopened batches opened by jobs,
progress reported with ``current_job().track()`` (thread, asyncio and process executors)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from tests.worker.helpers import running, wait_until

import werk
from werk import CallbackState, TrackState
from werk.server import EmbeddedServer


class Log:
    """What the jobs did, in order (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, object]] = []

    def add(self, what: str, value: object = None) -> None:
        with self.lock:
            self.events.append((what, value))

    def names(self) -> list[str]:
        with self.lock:
            return [name for name, _ in self.events]

    def count(self, what: str) -> int:
        return self.names().count(what)


@pytest.mark.parametrize("executor", ["thread", "asyncio"])
def test_a_batch_worked_by_a_worker_fires_complete_then_success_once(
    server: EmbeddedServer, executor: str
) -> None:
    app = werk.App(server.url)
    log = Log()
    members = 30

    @app.job
    def step(n: int) -> None:
        assert werk.current_job().bid is not None
        log.add("step", n)

    @app.job
    async def finished(kind: str) -> None:
        ctx = werk.current_job()
        log.add(kind, (ctx.bid, ctx.callback))

    with werk.Client(server.url) as client:
        with client.batch(
            description="steps",
            complete=finished.to_job("complete"),
            success=finished.to_job("success"),
        ) as batch:
            for n in range(members):
                step.push(n)
        with running(werk.Worker(app, concurrency=4, executor=executor), server):
            wait_until(lambda: log.count("success") == 1, what="the success callback")
        status = client.batch_status(batch.bid or "")
    app.close()
    names = log.names()
    assert names.count("step") == members
    assert names.count("complete") == names.count("success") == 1
    assert names.index("complete") > max(i for i, name in enumerate(names) if name == "step")
    assert names.index("success") > names.index("complete")
    assert dict(log.events)["complete"] == (batch.bid, "complete")
    assert dict(log.events)["success"] == (batch.bid, "success")
    assert (status.total, status.pending, status.failed) == (members, 0, 0)
    assert status.complete_state is status.success_state is CallbackState.SUCCEEDED


def test_a_job_opens_a_child_batch_and_reopens_its_own(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    log = Log()

    @app.job
    def leaf(name: str) -> None:
        log.add("leaf", (name, werk.current_job().bid))

    @app.job
    def parent_step() -> None:
        ctx = werk.current_job()
        with ctx.child_batch(description="child", success=done.to_job("child")) as child:
            leaf.push("in-child")  # a typed push joins the innermost batch
        with ctx.reopen_batch() as again:
            assert again.bid == ctx.bid
            again.push("leaf", "added")
        log.add("parent_step", (ctx.bid, child.bid))

    @app.job
    def done(which: str) -> None:
        ctx = werk.current_job()
        log.add(f"done-{which}", (ctx.bid, ctx.parent_bid))

    with werk.Client(server.url) as client:
        with client.batch(success=done.to_job("parent")) as batch:
            parent_step.push()
        with running(werk.Worker(app, concurrency=2), server):
            wait_until(lambda: log.count("done-parent") == 1, what="the parent's callback")
        parent = client.batch_status(batch.bid or "")
    app.close()
    events = dict(log.events)
    parent_bid, child_bid = events["parent_step"]  # type: ignore[misc]
    assert parent_bid == batch.bid and child_bid != batch.bid
    leaves = sorted(value for name, value in log.events if name == "leaf")  # type: ignore[type-var]
    assert leaves == [("added", batch.bid), ("in-child", child_bid)]
    assert events["done-child"] == (child_bid, batch.bid)  # the child's callback: _pbid
    names = log.names()
    assert names.index("done-parent") > names.index("done-child")  # the parent waited
    assert (parent.total, parent.pending) == (2, 0)  # its job and the one added by reopening


def test_a_tracked_job_reports_progress(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    reported = threading.Event()
    go_on = threading.Event()

    @app.job(custom={"track": 1})
    def export() -> None:
        ctx = werk.current_job()
        assert ctx.tracked
        ctx.track(40, "part 2 of 5", reserve_until=timedelta(hours=1))
        reported.set()
        assert go_on.wait(10)
        ctx.track(100, "all parts")

    with werk.Client(server.url) as client:
        jid = export.push()
        with running(werk.Worker(app, concurrency=1), server):
            wait_until(reported.is_set, what="the first report")
            working = client.track_get(jid)
            go_on.set()
            wait_until(lambda: client.track_get(jid).state is TrackState.SUCCESS, what="success")
        final = client.track_get(jid)
    app.close()
    assert (working.state, working.percent, working.desc) == (TrackState.WORKING, 40, "part 2 of 5")
    assert (final.percent, final.desc, final.finished) == (100, "all parts", True)


def test_track_on_an_untracked_job_is_a_no_op(
    server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = werk.App(server.url)
    ran: list[str] = []

    @app.job
    def plain(extend: bool) -> None:
        ctx = werk.current_job()
        assert not ctx.tracked and ctx.bid is None
        ctx.track(50, "ignored", reserve_until=timedelta(hours=1) if extend else None)
        ran.append(ctx.jid)

    with werk.Client(server.url) as client, caplog.at_level(logging.DEBUG, "werk.worker"):
        quiet = plain.push(False)
        extended = plain.push(True)
        with running(werk.Worker(app, concurrency=1), server):
            wait_until(lambda: len(ran) == 2, what="both jobs")
        # Nothing was sent for the first; the second sent its reservation alone.
        assert client.track_get(quiet) == werk.JobTrack(jid=quiet)
        alone = client.track_get(extended)
    app.close()
    assert (alone.state, alone.percent, alone.desc) == (TrackState.UNKNOWN, None, None)
    assert alone.updated_at is not None
    assert f"job {quiet} is not tracked" in caplog.text


def test_batch_helpers_refuse_a_job_without_a_batch(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    errors: list[BaseException] = []

    @app.job
    def lonely() -> None:
        ctx = werk.current_job()
        for attempt in (ctx.reopen_batch, ctx.child_batch):
            try:
                attempt()
            except werk.NotInBatchError as exc:
                errors.append(exc)

    lonely.push()
    with running(werk.Worker(app, concurrency=1), server):
        wait_until(lambda: len(errors) == 2, what="both refusals")
    app.close()
    assert "is not in a batch" in str(errors[0])
    with pytest.raises(werk.ConfigurationError, match="not run by a worker"):
        werk.JobContext(werk.Job("A")).client()


def test_eager_jobs_reach_the_apps_server(server: EmbeddedServer) -> None:
    app = werk.App(server.url, eager=True)

    @app.job(custom={"track": 1})
    def tracked() -> str:
        ctx = werk.current_job()
        ctx.track(70, "eager")
        return ctx.jid

    jid = app.run_eagerly(tracked.to_job())
    with werk.Client(server.url) as client:
        assert client.track_get(jid).percent == 70
    app.close()


@pytest.mark.slow
def test_jobs_in_child_processes_open_batches_and_track(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    from tests.worker import sample_jobs

    directory = str(tmp_path)
    with werk.Client(server.url) as client:
        with client.batch(success=werk.Job("record", [directory, "parent-done"])) as batch:
            jid = batch.push("fan_out", directory, 3, custom={"track": 1})
        worker = werk.Worker(sample_jobs.app, server.url, concurrency=1, executor="process")
        with running(worker, server):
            wait_until(
                lambda: (tmp_path / "parent-done").exists(), timeout=30, what="parent callback"
            )
        track = client.track_get(jid)
        fan_out = (tmp_path / "fan-out").read_text().split()
        child = client.batch_status(fan_out[1])
    assert fan_out[2] == batch.bid
    assert (track.state, track.percent, track.desc) == (
        TrackState.SUCCESS,
        100,
        "child batch committed",
    )
    assert child.parent_bid == batch.bid and child.total == 3
    assert child.success_state is CallbackState.SUCCEEDED
    assert (tmp_path / "child-done").exists()
    assert sorted(p.name for p in tmp_path.glob("member-*")) == ["member-0", "member-1", "member-2"]


def test_a_child_process_refuses_a_custom_tls_context_clearly(server: EmbeddedServer) -> None:
    # An SSLContext cannot cross to a child process: rather than connect with other TLS
    # settings, the child's job code gets a clear error.
    from werk.worker._child import job_clients

    refused = job_clients({"url": server.url, "custom_tls": True})
    assert refused is not None
    with pytest.raises(werk.ConfigurationError, match="ssl_context"):
        refused.get()
    plain = job_clients({"url": server.url, "custom_tls": False})
    assert plain is not None
    assert "faktory" in plain.get().info()
    plain.close()
    assert job_clients(None) is None


@pytest.mark.parametrize("executor", ["thread", "asyncio"])
def test_async_jobs_use_the_awaitable_forms(server: EmbeddedServer, executor: str) -> None:
    app = werk.App(server.url)
    log = Log()

    @app.job
    async def leaf(name: str) -> None:
        log.add("leaf", (name, werk.current_job().bid))

    @app.job(custom={"track": 1})
    async def parent_step() -> None:
        ctx = werk.current_job()
        await ctx.atrack(30, "opening")
        async with ctx.achild_batch(success=done.to_job("child")) as child:
            await child.push("leaf", "in-child")
            await child.push_bulk(leaf.to_job(f"bulk-{n}") for n in range(2))
        async with ctx.areopen_batch() as again:
            assert again.bid == ctx.bid
            leaf.push("added")  # a typed push joins the reopened batch
        await ctx.atrack(100, "done")
        log.add("parent_step", child.bid)

    @app.job
    async def done(which: str) -> None:
        log.add(f"done-{which}", werk.current_job().bid)

    with werk.Client(server.url) as client:
        with client.batch(success=done.to_job("parent")) as batch:
            jid = parent_step.push()
        with running(werk.Worker(app, concurrency=2, executor=executor), server):
            wait_until(lambda: log.count("done-parent") == 1, what="the parent's callback")
        track = client.track_get(jid)
    app.close()
    events = dict(log.events)
    child_bid = events["parent_step"]
    leaves = sorted(value for name, value in log.events if name == "leaf")  # type: ignore[type-var]
    assert leaves == [
        ("added", batch.bid),
        ("bulk-0", child_bid),
        ("bulk-1", child_bid),
        ("in-child", child_bid),
    ]
    assert events["done-child"] == child_bid and events["done-parent"] == batch.bid
    assert (track.percent, track.desc) == (100, "done")

"""Workers end to end on the embedded server: every job once, failures, executors, queues."""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

import pytest
from tests.server.blocking import parked
from tests.worker.helpers import running, wait_until

import werk
from werk.server import EmbeddedServer


class Counter:
    """Thread-safe count of executions per jid."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: collections.Counter[str] = collections.Counter()
        self.seen: dict[str, Any] = {}

    def hit(self, value: Any = None) -> None:
        ctx = werk.current_job()
        with self.lock:
            self.runs[ctx.jid] += 1
            self.seen[ctx.jid] = value

    def total(self) -> int:
        with self.lock:
            return sum(self.runs.values())


@pytest.mark.parametrize("executor", ["thread", "asyncio"])
def test_every_job_runs_exactly_once(server: EmbeddedServer, executor: str) -> None:
    app = werk.App(server.url)
    counter = Counter()

    @app.job
    def sync_job(i: int) -> None:
        counter.hit(i)

    @app.job
    async def async_job(i: int) -> None:
        await asyncio.sleep(0)
        counter.hit(i)

    jids = [sync_job.push(i) if i % 2 else async_job.push(i) for i in range(300)]
    app.close()
    with werk.Worker(app, concurrency=8, executor=executor):  # type: ignore[arg-type]
        wait_until(lambda: counter.total() >= 300, what="300 jobs")
        wait_until(lambda: server.info()["processed"] == 300, what="300 ACKs")
    assert set(counter.runs) == set(jids)
    assert set(counter.runs.values()) == {1}
    info = server.info()
    assert (info["failures"], info["working"], info["queues"]["default"]) == (0, 0, 0)


def test_args_arrive_after_a_json_round_trip(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    counter = Counter()

    @app.job
    def f(data: Any, pair: Any) -> None:
        counter.hit((data, pair))

    jid = f.push({"b": 1, "a": [1.5, None, True]}, (1, 2))
    app.close()
    with werk.Worker(app, concurrency=2):
        wait_until(lambda: counter.total() == 1)
    assert counter.seen[jid] == ({"a": [1.5, None, True], "b": 1}, [1, 2])


def test_failure_is_retried_with_errtype_message_and_backtrace(
    clock_server: EmbeddedServer,
) -> None:
    srv = clock_server
    app = werk.App(srv.url)
    attempts: list[tuple[int, werk.Failure | None]] = []

    @app.job(retry=3, backtrace=2)
    def flaky(n: int) -> None:
        ctx = werk.current_job()
        attempts.append((ctx.retry_count, ctx.failure))
        if ctx.retry_count == 0:
            helper(n)

    def helper(n: int) -> None:
        raise ValueError(f"bad input {n}")

    flaky.push(5)
    app.close()
    with running(werk.Worker(app, concurrency=2), srv):
        wait_until(lambda: srv.info()["retries"] == 1, what="the job in the retry set")
        srv.advance(60)  # the retry comes due (15-44 s after the first failure)
        wait_until(lambda: len(attempts) == 2, what="the retry")
        wait_until(lambda: srv.info()["processed"] == 2)
    assert attempts[0] == (0, None)
    retry_count, failure = attempts[1]
    assert retry_count == 1
    assert failure is not None
    assert (failure.errtype, failure.message) == ("ValueError", "bad input 5")
    assert len(failure.backtrace) == 2  # the job asked for two lines, innermost first
    assert "in helper" in failure.backtrace[0] and "raise ValueError" in failure.backtrace[0]
    assert "in flaky" in failure.backtrace[1]
    assert srv.info()["retries"] == 0


def test_unknown_jobtype_fails_with_a_clear_errtype(clock_server: EmbeddedServer) -> None:
    srv = clock_server
    app = werk.App(srv.url)

    @app.job
    def known() -> None: ...

    with werk.Client(srv.url) as client:
        jid = client.push("NoSuchJob", 1, retry=1)
    with running(werk.Worker(app, concurrency=1), srv):
        wait_until(lambda: srv.info()["retries"] == 1, what="the job in the retry set")
    srv.advance(60)
    with werk.Client(srv.url) as client:
        job = client.fetch("default")
    assert job is not None and job.jid == jid and job.failure is not None
    assert job.failure.errtype == "UnknownJobType"
    assert "NoSuchJob" in (job.failure.message or "")
    assert "known" in (job.failure.message or "")


def test_thread_and_asyncio_workers_side_by_side(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    where: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    @app.job
    def s(i: int) -> None:
        with lock:
            where[threading.current_thread().name.split("-")[1]] += 1

    @app.job
    async def a(i: int) -> None:
        await asyncio.sleep(0.001)
        with lock:
            where["async"] += 1

    w1 = werk.Worker(app, concurrency=4, executor="thread")
    w2 = werk.Worker(app, concurrency=4, executor="asyncio")
    with w1, w2:
        # Every slot of both is waiting in FETCH before the first job: neither drains it all.
        wait_until(lambda: parked(server) == 8, what="8 FETCHes")
        for i in range(100):
            s.push(i)
            a.push(i)
        app.close()
        wait_until(lambda: server.info()["processed"] == 200, what="200 jobs")
        assert w1.wid != w2.wid
    assert where["async"] == 100
    assert w1.processed > 0 and w2.processed > 0
    assert w1.processed + w2.processed == 200


def test_weighted_queues_follow_their_weights_roughly(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    order: list[str] = []

    @app.job
    def j() -> None:
        order.append(werk.current_job().queue)

    for _ in range(300):
        j.with_options(queue="heavy").push()
        j.with_options(queue="light").push()
    app.close()
    # One slot, so each FETCH's queue order decides which job runs next.
    worker = werk.Worker(
        app, concurrency=1, queues={"heavy": 3, "light": 1}, queue_strategy="weighted"
    )
    with worker:
        wait_until(lambda: len(order) >= 200, what="200 jobs")
    first = order[:200]
    heavy = first.count("heavy") / len(first)
    assert 0.65 < heavy < 0.85, heavy  # 3:1 -> 75 % while both queues have jobs
    assert "light" in first  # no starvation


def test_strict_queues_drain_in_priority_order(server: EmbeddedServer) -> None:
    app = werk.App(server.url)
    order: list[str] = []

    @app.job
    def j() -> None:
        order.append(werk.current_job().queue)

    for _ in range(20):
        j.with_options(queue="low").push()
        j.with_options(queue="high").push()
    app.close()
    with werk.Worker(app, concurrency=1, queues=["high", "low"]):
        wait_until(lambda: len(order) == 40)
    assert order == ["high"] * 20 + ["low"] * 20


def test_middleware_runs_around_jobs_in_the_worker(server: EmbeddedServer) -> None:
    events: list[str] = []
    lock = threading.Lock()

    class Hooks(werk.Middleware):
        def on_startup(self, worker: werk.Worker) -> None:
            events.append("startup")

        def before_process(self, ctx: werk.JobContext) -> None:
            with lock:
                events.append(f"before:{ctx.args[0]}")

        def after_process(self, ctx: werk.JobContext, duration: float) -> None:
            with lock:
                events.append(f"after:{ctx.args[0]}")
            raise RuntimeError("a broken hook does not fail the job")

        def on_failure(self, ctx: werk.JobContext, error: BaseException, duration: float) -> None:
            with lock:
                events.append(f"failure:{ctx.args[0]}:{error}")

        def on_shutdown(self, worker: werk.Worker) -> None:
            events.append("shutdown")

    app = werk.App(server.url, middleware=[Hooks()])

    @app.job(retry=0)
    def j(x: str) -> None:
        if x == "bad":
            raise ValueError("bad")

    j.push("good")
    j.push("bad")
    app.close()
    with werk.Worker(app, concurrency=1):
        wait_until(lambda: server.info()["processed"] == 2)
    assert events[0] == "startup" and events[-1] == "shutdown"
    assert events[1:-1] == ["before:good", "after:good", "before:bad", "failure:bad:bad"]
    assert server.info()["failures"] == 1  # only the job that raised

"""App and JobFunction: registration, typed pushes, options, eager mode, middleware."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import werk
from werk.server import EmbeddedServer


def test_jobtype_defaults_to_function_name_and_direct_call_runs_locally() -> None:
    app = werk.App()

    @app.job
    def add(a: int, b: int) -> int:
        return a + b

    assert add.jobtype == "add"
    assert app.lookup("add") is add
    assert add(2, 3) == 5  # a plain call: no server, no JSON


def test_options_are_validated_at_registration() -> None:
    app = werk.App()
    with pytest.raises(werk.JobValidationError) as err:

        @app.job(queue="bad queue!")
        def f() -> None: ...

    assert err.value.field == "queue"


def test_registering_a_jobtype_twice_is_refused() -> None:
    app = werk.App()

    @app.job(jobtype="X")
    def one() -> None: ...

    with pytest.raises(werk.ConfigurationError):

        @app.job(jobtype="X")
        def two() -> None: ...


def test_to_job_binds_keywords_to_positions_and_applies_options() -> None:
    app = werk.App()

    @app.job(jobtype="Resize", queue="images", retry=5, reserve_for=120, backtrace=3)
    def resize(image_id: int, size: str = "large") -> None: ...

    job = resize.to_job(42, size="small")
    assert job.args == [42, "small"]
    d = job.to_dict()
    assert (d["jobtype"], d["queue"], d["retry"], d["reserve_for"], d["backtrace"]) == (
        "Resize",
        "images",
        5,
        120,
        3,
    )
    with pytest.raises(werk.JobArgumentError, match="nope") as err:
        resize.to_job(1, nope=2)  # type: ignore[call-arg]
    assert isinstance(err.value, TypeError)  # what a bad call raises in Python


def test_keyword_only_parameters_cannot_be_pushed() -> None:
    app = werk.App()

    @app.job
    def f(a: int, *, flag: bool = False) -> None: ...

    with pytest.raises(werk.JobArgumentError, match="keyword-only"):
        f.to_job(1, flag=True)


def test_args_that_json_cannot_carry_are_refused_before_sending() -> None:
    app = werk.App()

    @app.job
    def f(x: Any) -> None: ...

    with pytest.raises(werk.JobValidationError):
        f.to_job({1, 2})


def test_push_variants_reach_the_server_with_their_options(server: EmbeddedServer) -> None:
    app = werk.App(server.url)

    @app.job(queue="mail", retry=3, custom={"team": "a"})
    def send(to: str) -> None: ...

    try:
        jid = send.push("ann@example.com")
        urgent = send.with_options(queue="urgent", retry=0).push("bob@example.com")
        later = send.push_in(3600, "cy@example.com")
        at = send.push_at(datetime.now(timezone.utc) + timedelta(hours=2), "di@example.com")
    finally:
        app.close()
    assert len({jid, urgent, later, at}) == 4
    info = server.info()
    assert info["queues"].get("mail") == 1
    assert info["queues"].get("urgent") == 1
    assert info["scheduled"] == 2
    with werk.Client(server.url) as client:
        job = client.fetch("mail")
        assert job is not None
        assert (job.jid, job.args, job.retry, job.custom) == (
            jid,
            ["ann@example.com"],
            3,
            {"team": "a"},
        )
        job2 = client.fetch("urgent")
        assert job2 is not None and job2.retry == 0
        assert send.options.queue == "mail"  # with_options made a copy


def test_eager_mode_runs_after_a_json_round_trip_with_context() -> None:
    app = werk.App(eager=True)
    seen: list[Any] = []

    @app.job(custom={"k": "v"})
    def f(data: Any, pair: Any) -> None:
        ctx = werk.current_job()
        seen.append((data, pair, ctx.jobtype, ctx.custom, ctx.retry_count))

    jid = f.push({"n": 1}, (1, 2))
    # The tuple arrives as a list, exactly as from a real server.
    assert seen == [({"n": 1}, [1, 2], "f", {"k": "v"}, 0)]
    assert isinstance(jid, str) and len(jid) >= 8


def test_eager_mode_propagates_exceptions_and_runs_async_handlers() -> None:
    app = werk.App(eager=True)
    ran: list[int] = []

    @app.job
    def bad() -> None:
        raise ValueError("nope")

    @app.job
    async def good(x: int) -> None:
        ran.append(werk.current_job().args[0])

    with pytest.raises(ValueError, match="nope"):
        bad.push()
    good.push(7)
    assert ran == [7]


def test_eager_async_handler_pushed_from_inside_an_event_loop() -> None:
    app = werk.App(eager=True)
    ran: list[int] = []

    @app.job
    async def good(x: int) -> None:
        ran.append(x)

    async def producer() -> None:
        good.push(3)  # a sync push from async code: runs on a loop of its own

    # On a thread of its own: the main thread's event loop state is not ours to rely on.
    t = threading.Thread(target=lambda: asyncio.run(producer()))
    t.start()
    t.join()
    assert ran == [3]


def test_current_job_outside_a_job_raises() -> None:
    with pytest.raises(LookupError):
        werk.current_job()


class Recorder(werk.Middleware):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def before_push(self, job: werk.Job) -> None:
        job.custom = {**(job.custom or {}), "traced": True}
        self.calls.append("before_push")

    def after_push(self, job: werk.Job) -> None:
        self.calls.append("after_push")

    def before_process(self, ctx: werk.JobContext) -> None:
        self.calls.append(f"before_process:{ctx.custom.get('traced')}")

    def after_process(self, ctx: werk.JobContext, duration: float) -> None:
        self.calls.append("after_process")

    def on_failure(self, ctx: werk.JobContext, error: BaseException, duration: float) -> None:
        self.calls.append(f"on_failure:{type(error).__name__}")


class Broken(werk.Middleware):
    def before_push(self, job: werk.Job) -> None:
        raise RuntimeError("middleware bug")

    def before_process(self, ctx: werk.JobContext) -> None:
        raise RuntimeError("middleware bug")


def test_middleware_hooks_run_in_order_and_a_raising_hook_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder()
    app = werk.App(eager=True, middleware=[Broken(), rec])

    @app.job
    def ok() -> None: ...

    @app.job
    def bad() -> None:
        raise KeyError("x")

    with caplog.at_level(logging.ERROR, logger="werk.worker.middleware"):
        ok.push()
        with pytest.raises(KeyError):
            bad.push()
    assert rec.calls == [
        "before_push",
        "before_process:True",
        "after_process",
        "after_push",
        "before_push",
        "before_process:True",
        "on_failure:KeyError",
    ]
    assert "Broken.before_push raised" in caplog.text
    assert "Broken.before_process raised" in caplog.text


def test_an_unknown_job_type_has_one_error_and_one_message_in_eager_mode() -> None:
    app = werk.App(eager=True)

    @app.job
    def known() -> None: ...

    with pytest.raises(werk.UnknownJobTypeError) as err:
        app.push_job(werk.Job("NoSuchJob", args=[1]))
    assert isinstance(err.value, LookupError)
    # The message a worker FAILs such a job with (and a child process reports).
    assert str(err.value) == "no handler registered for job type 'NoSuchJob' (known: known)"


@pytest.mark.parametrize(
    "make",
    [
        lambda: werk.App(default_backtrace=51),
        lambda: werk.App(default_backtrace=-1),
        lambda: werk.App().job(queu="mail"),
        lambda: werk.App().job(42),
        lambda: werk.Worker("myapp:app"),  # type: ignore[arg-type]
        lambda: werk.Worker(werk.App(), concurrency=0),
        lambda: werk.Worker(werk.App(), shutdown_timeout=-1),
        lambda: werk.Worker(werk.App(), heartbeat_interval=0),
        lambda: werk.Worker(werk.App(), timeout="5"),  # type: ignore[arg-type]
        lambda: werk.Worker(werk.App(), labels="gpu"),
        lambda: werk.Worker(werk.App(), executor="fork"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_are_a_configuration_error(make: Any) -> None:
    with pytest.raises(werk.ConfigurationError):
        make()


def test_push_in_takes_seconds_or_a_timedelta() -> None:
    app = werk.App(eager=True)

    @app.job
    def f() -> None: ...

    with pytest.raises(werk.JobValidationError) as err:
        f.push_in("soon")  # type: ignore[arg-type]
    assert err.value.field == "at"


def _on_another_thread(fn: Any) -> Any:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_client_is_one_connection_per_thread_for_apps_and_workers(
    server: EmbeddedServer,
) -> None:
    app = werk.App(server.url)
    worker = werk.Worker(app, concurrency=1)
    for owner in (app, worker):
        mine = owner.client()
        assert owner.client() is mine  # reused on this thread
        assert _on_another_thread(owner.client) is not mine  # another thread, another one
        mine.info()
        assert mine.connected
    assert worker.client().settings.wid == worker.wid  # says HELLO as the worker
    # One default timeout for every werk connection, the worker's included.
    assert worker.client().settings.timeout == app.client().settings.timeout
    assert worker.client().settings.timeout == werk.client.DEFAULT_TIMEOUT
    app_client = app.client()
    app.close()
    assert not app_client.connected  # closed ...
    assert app.client() is not app_client  # ... and forgotten
    app.close()

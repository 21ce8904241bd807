"""The asyncio executor's event loop: uvloop's when it is installed, asyncio's own when
``WERK_EVENT_LOOP=asyncio`` says so; jobs, their context, their failures and their
timeouts behave alike on both."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

import pytest
from tests.worker.helpers import running, wait_until

import werk
from werk.server import EmbeddedServer
from werk.worker._aio import EVENT_LOOP_VARIABLE, new_event_loop

LOOPS = ["asyncio", "uvloop"]


def _kind(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


@pytest.mark.parametrize("choice", ["", "uvloop", "UVLoop", "asyncio", " asyncio "])
def test_uvloop_unless_asyncio_is_asked_for(choice: str) -> None:
    loop = new_event_loop(choice)
    try:
        assert _kind(loop) == ("asyncio" if "asyncio" in choice else "uvloop")
    finally:
        loop.close()


def test_the_environment_variable_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, "asyncio")
    loop = new_event_loop()
    assert _kind(loop) == "asyncio"
    loop.close()
    monkeypatch.delenv(EVENT_LOOP_VARIABLE)
    loop = new_event_loop()
    assert _kind(loop) == "uvloop"
    loop.close()


def test_a_loop_werk_does_not_know_is_refused() -> None:
    with pytest.raises(werk.ConfigurationError, match="WERK_EVENT_LOOP must be asyncio or uvloop"):
        new_event_loop("trio")


def test_without_uvloop_asyncios_loop_unless_uvloop_is_demanded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: import fails
    loop = new_event_loop("")
    assert _kind(loop) == "asyncio"
    loop.close()
    with pytest.raises(werk.ConfigurationError, match="uvloop is not installed"):
        new_event_loop("uvloop")


class Failures(werk.Middleware):
    """The errors handlers raised, by jid."""

    def __init__(self) -> None:
        self.errors: dict[str, BaseException] = {}

    def on_failure(self, ctx: werk.JobContext, error: BaseException, duration: float) -> None:
        self.errors[ctx.jid] = error


@pytest.mark.parametrize("choice", LOOPS)
def test_sync_and_async_jobs_on_the_chosen_loop(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, choice: str
) -> None:
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, choice)
    app = werk.App(server.url)
    failures = Failures()
    app.add_middleware(failures)
    lock = threading.Lock()
    ran: dict[str, Any] = {}
    loops: set[str] = set()

    @app.job
    async def async_job(i: int) -> None:
        loops.add(_kind(asyncio.get_running_loop()))
        with lock:
            ran[werk.current_job().jid] = ("async", i)

    @app.job
    def sync_job(i: int) -> None:
        with lock:
            ran[werk.current_job().jid] = ("sync", i, threading.current_thread().name)

    @app.job
    def sync_broken() -> None:
        raise ValueError("sync boom")

    @app.job
    async def async_broken() -> None:
        raise KeyError("async boom")

    jids = {async_job.push(i) if i % 2 else sync_job.push(i): i for i in range(60)}
    broken = {sync_broken.push(): ValueError, async_broken.push(): KeyError}
    worker = werk.Worker(app, concurrency=4, executor="asyncio")
    with running(worker, server):
        wait_until(lambda: server.info()["processed"] == 62, what="62 reports")
    assert loops == {choice}
    assert {jid: entry[1] for jid, entry in ran.items()} == jids  # each once, in its context
    for entry in ran.values():
        assert entry[0] == ("async" if entry[1] % 2 else "sync")
        if entry[0] == "sync":
            assert entry[2].startswith("werk-sync-")  # off the loop, on a worker thread
    assert {jid: type(error) for jid, error in failures.errors.items()} == broken
    info = server.info()
    assert (info["failures"], info["retries"], worker.processed, worker.failed) == (2, 2, 60, 2)
    app.close()


@pytest.mark.parametrize("choice", LOOPS)
def test_a_stuck_sync_handler_costs_its_slot_nothing(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, choice: str
) -> None:
    # One slot, one thread for sync handlers: the stuck handler's job FAILs at its deadline
    # and the next sync job gets a thread of its own (the stuck one cannot be stopped).
    monkeypatch.setenv(EVENT_LOOP_VARIABLE, choice)
    app = werk.App(server.url)
    release, started = threading.Event(), threading.Event()
    after: list[str] = []

    @app.job(timeout=0.5)
    def stuck() -> None:
        started.set()
        release.wait(30)

    @app.job
    def next_one() -> None:
        after.append(threading.current_thread().name)

    jid = stuck.push()
    worker = werk.Worker(app, concurrency=1, executor="asyncio")
    try:
        with running(worker, server):
            assert started.wait(10)
            wait_until(lambda: server.info()["retries"] == 1, what="the JobTimeout FAIL")
            next_one.push()
            wait_until(lambda: len(after) == 1, what="the next job, on another thread")
    finally:
        release.set()
    assert after == ["werk-sync-1"]
    retry = server.call(lambda: server.manager.retries.ordered())
    (entry,) = (json.loads(e.payload) for e in retry)
    assert (entry["jid"], entry["failure"]["errtype"]) == (jid, "JobTimeout")
    app.close()

"""The process executor's I/O thread: TLS connections (through the blocking client on
helper threads), the middleware around each job in the parent, the children's scheduling."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from tests.servers import TLSFiles
from tests.worker import sample_jobs
from tests.worker.helpers import running, wait_until

import werk
from werk.server import EmbeddedServer

pytestmark = pytest.mark.slow


def test_jobs_run_over_tls(make_server: Any, tls_cert: TLSFiles, tmp_path: Path) -> None:
    # A TLS socket may hold decrypted bytes a selector cannot see: every write and its
    # replies go through the blocking client, on a helper thread.
    srv = make_server(tls_cert=str(tls_cert.cert), tls_key=str(tls_cert.key))
    url = f"tcp+tls://localhost:{srv.port}"
    ctx = ssl.create_default_context(cafile=str(tls_cert.cert))
    worker = werk.Worker(sample_jobs.app, url, concurrency=2, executor="process", ssl_context=ctx)
    with running(worker, srv), werk.Client(url, ssl_context=ctx) as client:
        for _ in range(5):
            client.push("record", str(tmp_path), "tls")
        client.push("boom", "over TLS")
        wait_until(lambda: worker.processed + worker.failed == 6, timeout=30, what="6 jobs")
    pids = [int(line.split()[0]) for line in (tmp_path / "tls").read_text().splitlines()]
    assert len(pids) == 5 and os.getpid() not in pids
    info = srv.info()
    assert (info["processed"], info["failures"]) == (6, 1)


class Seen(werk.Middleware):
    """What the parent's middleware sees of each job."""

    def __init__(self) -> None:
        self.before: list[tuple[str, str]] = []
        self.after: list[str] = []
        self.failed: list[tuple[str, str]] = []

    def before_process(self, ctx: werk.JobContext) -> None:
        self.before.append((ctx.job.jid, werk.current_job().jid))

    def after_process(self, ctx: werk.JobContext, duration: float) -> None:
        self.after.append(ctx.job.jid)

    def on_failure(self, ctx: werk.JobContext, error: BaseException, duration: float) -> None:
        self.failed.append((ctx.job.jid, type(error).__name__))


app = werk.App()  # the children import it from here; only the parent has middleware


@app.job
def fine() -> None:
    """Nothing."""


@app.job(retry=0)
def fails() -> None:
    """Raise, in the child."""
    raise ValueError("in a child")


def test_middleware_sees_each_job_as_current_in_the_parent(server: EmbeddedServer) -> None:
    seen = Seen()
    app.add_middleware(seen)
    worker = werk.Worker(app, server.url, concurrency=3, executor="process")
    with running(worker, server), werk.Client(server.url) as client:
        ok = [client.push("fine") for _ in range(4)]
        bad = client.push("fails", retry=0)
        wait_until(lambda: len(seen.after) + len(seen.failed) == 5, timeout=30, what="5 jobs")
    assert sorted(seen.before) == sorted((jid, jid) for jid in [*ok, bad])
    assert sorted(seen.after) == sorted(ok)
    assert seen.failed == [(bad, "RemoteJobError")]


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")
def test_children_are_batch_tasks(server: EmbeddedServer) -> None:
    worker = werk.Worker(sample_jobs.app, server.url, concurrency=2, executor="process")
    with running(worker, server):
        children = [c for c in worker._executor._children if c is not None]  # type: ignore[union-attr]
        assert len(children) == 2
        for child in children:
            assert os.sched_getscheduler(child.proc.pid) == os.SCHED_BATCH
    assert os.sched_getscheduler(0) != os.SCHED_BATCH  # the parent's I/O thread is not one

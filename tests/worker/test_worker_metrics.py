"""Prometheus metrics of a worker (`werk worker --metrics-port`), scraped during and after a run."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from tests.servers import ServerFactory
from tests.worker.helpers import ROOT, WERK, running, subprocess_env, wait_until

import werk
from werk.metrics import FOLD_AT, PrometheusMiddleware
from werk.server import EmbeddedServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return _parse(reply.read().decode())


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_metrics_count_what_the_worker_did(
    server: EmbeddedServer, tmp_path: Path, executor: str
) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            *WERK,
            "worker",
            "tests.worker.sample_jobs:app",
            "-c",
            "3",
            "-q",
            "default",
            "-q",
            "other",
            "--executor",
            executor,
            "--metrics-port",
            str(port),
            "--metrics-bind",
            "127.0.0.1",
        ],
        cwd=ROOT,
        env=subprocess_env(server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with werk.Client(server.url) as client:
            client.push("gated", str(tmp_path), "g", queue="other")
            wait_until(lambda: _lines(tmp_path / "g.start"), timeout=60, what="the gated job")
            during = _scrape(port)  # the gated job holds a slot until g.go exists
            for i in range(7):
                client.push("record", str(tmp_path), f"r{i}")
            for _ in range(3):
                client.push("boom", "on purpose", retry=0)
            for _ in range(2):
                client.push("NoSuchJob", retry=0, queue="other")
            wait_until(lambda: server.info()["processed"] == 12, timeout=60, what="12 jobs")
            (tmp_path / "g.go").touch()
            wait_until(lambda: server.info()["processed"] == 13, timeout=60, what="the gated job")
        after = _scrape(port)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out

    assert _value(during, "werk_jobs_in_progress") == 1
    assert _value(during, "werk_slots") == 3
    assert _value(during, "werk_jobs_total", jobtype="gated", queue="other", outcome="success") == 0

    def total(jobtype: str, queue: str, outcome: str) -> float:
        return _value(after, "werk_jobs_total", jobtype=jobtype, queue=queue, outcome=outcome)

    assert total("record", "default", "success") == 7
    assert total("record", "default", "failure") == 0
    assert total("boom", "default", "failure") == 3
    assert total("boom", "default", "success") == 0
    assert total("gated", "other", "success") == 1
    assert _value(after, "werk_unknown_jobs_total", queue="other") == 2
    assert not any(
        dict(labels).get("jobtype") == "NoSuchJob" for _, labels in after
    )  # the stray name never becomes a series
    all_jobs = sum(v for (name, _), v in after.items() if name == "werk_jobs_total")
    assert all_jobs == 11 == server.info()["processed"] - 2
    assert _value(after, "werk_job_duration_seconds_count", jobtype="record", queue="default") == 7
    assert _value(after, "werk_job_duration_seconds_count", jobtype="boom", queue="default") == 3
    assert _value(after, "werk_job_duration_seconds_count", jobtype="gated", queue="other") == 1
    assert _value(after, "werk_job_duration_seconds_sum", jobtype="gated", queue="other") > 0
    assert _value(after, "werk_jobs_in_progress") == 0
    assert _value(after, "werk_outages_total") == 0
    # Every job came by a FETCH, timed; the idle slots' FETCHes came back empty.
    fetched = _value(after, "werk_fetch_duration_seconds_count", outcome="job")
    assert fetched == 13
    assert _value(after, "werk_fetch_duration_seconds_sum", outcome="job") > 0
    assert _value(during, "werk_fetch_duration_seconds_count", outcome="job") == 1
    if executor == "process":  # the jobs ran in the children, not in the process serving
        pids = {line.split()[0] for i in range(7) for line in _lines(tmp_path / f"r{i}")}
        assert str(proc.pid) not in pids and len(pids) >= 1


def test_outages_are_counted_with_their_duration(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    port = _free_port()
    srv = make_server(bind=f"127.0.0.1:{port}", fetch_timeout=0.2)
    app = werk.App()
    registry = CollectorRegistry()
    metrics = PrometheusMiddleware(app, registry=registry)
    app.add_middleware(metrics)
    worker = werk.Worker(app, srv.url, concurrency=2, heartbeat_interval=0.2)
    with running(worker, srv):
        wait_until(lambda: registry.get_sample_value("werk_slots") == 2, what="on_startup")
        assert registry.get_sample_value("werk_outages_total") == 0
        srv.stop()
        wait_until(lambda: worker.outages >= 1, what="the outage to be noticed")
        # A stopping server may let a connection in, then drop it: one stop can be two outages.
        assert (registry.get_sample_value("werk_outages_total") or 0) >= 1
        first = registry.get_sample_value("werk_outage_seconds_total")
        assert first is not None
        wait_until(
            lambda: (registry.get_sample_value("werk_outage_seconds_total") or 0) > first,
            what="the ongoing outage to grow",
        )
        srv2 = make_server(bind=f"127.0.0.1:{port}", fetch_timeout=0.2)
        with werk.Client(srv2.url) as client:
            client.push("NoSuchJob", retry=0)
        wait_until(lambda: srv2.info()["failures"] == 1, timeout=30, what="the reconnection")
        # One connection can find the old server gone only after another has reconnected:
        # a second, short outage. Read the total once no outage is open.
        wait_until(lambda: not worker._crew.outage.active, timeout=30, what="the outage to end")
        lasted = registry.get_sample_value("werk_outage_seconds_total")
        assert lasted is not None and lasted > first
        assert registry.get_sample_value("werk_outages_total") == worker.outages
        assert registry.get_sample_value("werk_unknown_jobs_total", {"queue": "default"}) == 1


def test_the_grafana_dashboard_queries_only_metrics_the_worker_exports() -> None:
    import json
    import re

    dashboard = json.loads((ROOT / "docs" / "grafana" / "werk-worker.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for e in exprs for name in re.findall(r"\bwerk_[a-z_]+", e)}
    registry = CollectorRegistry()
    metrics = PrometheusMiddleware(werk.App(), registry=registry)
    ctx = werk.JobContext(werk.Job("a"))
    metrics.before_process(ctx)
    metrics.after_process(ctx, 0.1)
    families = list(registry.collect())
    exported = {s.name for family in families for s in family.samples}
    exported |= {f"{f.name}_total" for f in families if f.type == "counter"}  # none counted yet
    assert used and used <= exported, used - exported
    assert {"werk_jobs_total", "werk_job_duration_seconds_bucket", "werk_slots"} <= used


@pytest.mark.parametrize("executor", ["asyncio", "thread"])
def test_fetches_are_timed_by_the_hook_and_only_when_some_middleware_listens(
    server: EmbeddedServer, executor: str
) -> None:
    app = werk.App()
    done: list[int] = []

    @app.job(jobtype="Note")
    def note(i: int) -> None:
        done.append(i)

    registry = CollectorRegistry()
    app.add_middleware(PrometheusMiddleware(app, registry=registry))
    plain = werk.Worker(werk.App(), server.url, concurrency=1)
    assert plain._crew.fetched is None  # no middleware: no FETCH is timed
    worker = werk.Worker(app, server.url, concurrency=2, executor=executor)
    assert worker._crew.fetched is not None
    with werk.Client(server.url) as client:
        for i in range(5):
            client.push(werk.Job("Note", [i]))
    with running(worker, server):
        wait_until(lambda: len(done) == 5, what="the jobs")
        found = {"outcome": "job"}
        wait_until(
            lambda: registry.get_sample_value("werk_fetch_duration_seconds_count", found) == 5,
            what="5 timed FETCHes",
        )


def test_jobs_are_folded_in_when_scraped_and_an_unscraped_worker_stays_bounded() -> None:
    app = werk.App()

    @app.job(jobtype="A")
    def a() -> None: ...

    registry = CollectorRegistry()
    metrics = PrometheusMiddleware(app, registry=registry)
    ok, bad = werk.JobContext(werk.Job("A")), werk.JobContext(werk.Job("A", queue="q"))
    runs = FOLD_AT * 3 + 5
    for i in range(runs):
        metrics.before_process(ok)
        metrics.after_fetch(0.001, True)
        if i % 5:
            metrics.after_process(ok, 0.02)
        else:
            metrics.on_failure(bad, ValueError("no"), 7.0)
        queues = (metrics._ended, metrics._fetched)
        assert max(map(len, queues)) <= FOLD_AT  # nobody scrapes: the jobs fold them
    metrics.before_process(ok)  # still running

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    failed = (runs + 4) // 5
    succeeded = runs - failed
    assert value("werk_jobs_total", jobtype="A", queue="default", outcome="success") == succeeded
    assert value("werk_jobs_total", jobtype="A", queue="q", outcome="failure") == failed
    assert value("werk_jobs_total", jobtype="A", queue="q", outcome="success") == 0
    bucket = "werk_job_duration_seconds_bucket"
    assert value(bucket, jobtype="A", queue="default", le="0.025") == succeeded
    assert value(bucket, jobtype="A", queue="default", le="0.01") == 0
    assert value(bucket, jobtype="A", queue="q", le="5.0") == 0
    assert value(bucket, jobtype="A", queue="q", le="10.0") == failed
    assert value(bucket, jobtype="A", queue="q", le="+Inf") == failed
    assert value("werk_job_duration_seconds_sum", jobtype="A", queue="q") == 7.0 * failed
    assert value("werk_fetch_duration_seconds_count", outcome="job") == runs
    assert value("werk_fetch_duration_seconds_count", outcome="empty") == 0
    assert value("werk_jobs_in_progress") == 1
    assert not any(queues)  # the scrape folded the rest

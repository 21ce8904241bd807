"""The server's Prometheus figures: scraped while jobs move, checked against what was done;
an extension's samples; ``--metrics-bind`` without the web UI; JSON logs of ``werk server``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

import werk
from werk.server import EmbeddedServer, ManualClock
from werk.server._extension import Extension, MetricSample
from werk.server._metrics import metrics_page

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(srv: EmbeddedServer) -> Samples:
    async def page() -> tuple[int, bytes, str]:
        return metrics_page(srv)  # on the server's loop, as the web UI calls it

    status, body, ctype = asyncio.run_coroutine_threadsafe(page(), srv.server.loop).result(10)
    assert status == 200, body
    assert ctype.startswith("text/plain; version=0.0.4")
    return parse(body.decode())


def test_figures_match_what_was_pushed_fetched_acked_and_failed(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    clock = ManualClock(MANUAL_EPOCH)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    scrape(srv)  # the histogram counts from here (made on first use)
    storage: Any = srv.server.storage
    commits_before = storage.commits
    with werk.Client(srv.url) as client:
        for i in range(5):
            client.push(werk.Job("A", [i], queue="alpha"))
        client.push(werk.Job("B", [], queue="beta"))
        client.push(werk.Job("C", [], at="2099-01-01T00:00:00Z"))
        srv.advance(30)  # the oldest job of alpha and beta is now 30 s old
        fetched = [client.fetch("alpha") for _ in range(3)]
        assert all(job is not None for job in fetched)
        client.ack(fetched[0].jid)  # type: ignore[union-attr]
        client.ack(fetched[1].jid)  # type: ignore[union-attr]
        client.fail(fetched[2].jid, RuntimeError("boom"))  # type: ignore[union-attr]
        got = scrape(srv)
        commits_after = storage.commits
        info = client.info()
    assert got[("werk_server_queue_jobs", (("queue", "alpha"),))] == 2
    assert got[("werk_server_queue_jobs", (("queue", "beta"),))] == 1
    assert got[("werk_server_queue_latency_seconds", (("queue", "alpha"),))] == 30
    assert got[("werk_server_queue_latency_seconds", (("queue", "beta"),))] == 30
    sets = {labels[0][1]: v for (name, labels), v in got.items() if name == "werk_server_set_jobs"}
    assert sets == {"scheduled": 1, "retries": 1, "dead": 0, "working": 0}
    assert got[("werk_server_jobs_processed_total", ())] == 3  # as Faktory: ACKs and FAILs
    assert got[("werk_server_jobs_failed_total", ())] == 1
    assert got[("werk_server_connections", ())] == 1
    verbs = {
        labels[0][1]: v for (name, labels), v in got.items() if name == "werk_server_commands_total"
    }
    assert {k: v for k, v in verbs.items() if v} == {"PUSH": 7, "FETCH": 3, "ACK": 2, "FAIL": 1}
    assert info["server"]["command_count"] == 13 + 1  # INFO counts itself, after the scrape
    assert got[("werk_server_uptime_seconds", ())] == 30
    writes = got[("werk_server_storage_write_seconds_count", ())]
    assert writes == commits_after - commits_before >= 4  # pushes, fetches, ACKs, FAIL
    assert got[("werk_server_storage_write_seconds_sum", ())] > 0


class Reporting(Extension):
    """Reports two families, one with labels; a bad sample is left out, not fatal."""

    def metric_samples(self) -> list[MetricSample]:
        return [
            MetricSample("werk_server_test_pending", 3, help="Pending things."),
            MetricSample("werk_server_test_runs", 5, kind="counter", labels={"entry": "a"}),
            MetricSample("werk_server_test_runs", 7, kind="counter", labels={"entry": "b"}),
            MetricSample("werk_server_test_runs", 1, kind="counter"),  # labels differ: left out
            MetricSample("werk_server_test_odd", 1, kind="summary"),  # not a gauge or counter
        ]


class Broken(Extension):
    def metric_samples(self) -> list[MetricSample]:
        raise RuntimeError("a bug")


def test_extensions_report_their_figures_and_a_broken_one_costs_only_its_own(
    make_server: ServerFactory,
) -> None:
    srv = make_server(extensions=[Broken(), Reporting()])
    got = scrape(srv)
    assert got[("werk_server_test_pending", ())] == 3
    assert got[("werk_server_test_runs_total", (("entry", "a"),))] == 5
    assert got[("werk_server_test_runs_total", (("entry", "b"),))] == 7
    assert ("werk_server_test_runs_total", ()) not in got
    assert not [key for key in got if key[0].startswith("werk_server_test_odd")]
    assert got[("werk_server_connections", ())] == 0  # the server's own figures are all there


def test_commands_are_counted_by_verb_and_unknown_verbs_are_not(make_server: ServerFactory) -> None:
    srv = make_server()
    with Raw(srv) as raw:  # HELLO is the handshake, not a command
        raw.cmd(b"BATCH NEW {}")  # answered "only in Enterprise" unless an extension takes it
        raw.cmd(b"NOPE")
        raw.info()
        raw.info()
    got = scrape(srv)
    verbs = {
        labels[0][1]: v for (name, labels), v in got.items() if name == "werk_server_commands_total"
    }
    assert {k: v for k, v in verbs.items() if v} == {"BATCH": 1, "INFO": 2}
    assert "NOPE" not in verbs


def test_the_grafana_dashboard_queries_only_metrics_the_server_exports(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    import json
    import re

    root = Path(__file__).resolve().parents[2]
    dashboard = json.loads((root / "docs" / "grafana" / "werk-server.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for e in exprs for name in re.findall(r"\bwerk_[a-z_]+", e)}
    srv = make_server(storage="sqlite", data_dir=tmp_path)
    with werk.Client(srv.url) as client:
        client.push(werk.Job("A", []))
    exported = {name for name, _ in scrape(srv)}
    assert used and used <= exported, used - exported
    assert {"werk_server_queue_jobs", "werk_server_commands_total"} <= used


def test_the_standard_extensions_report_batches_cron_throttles_unique_expiry_and_tracks(
    make_server: ServerFactory,
) -> None:
    every_minute = {"schedule": "* * * * *", "job": {"type": "Tick", "queue": "cronq"}}
    config = {"cron": [every_minute], "throttles": {"slow": {"concurrency": 2, "timeout": 600}}}
    srv = make_server(clock=ManualClock(MANUAL_EPOCH), config=config)
    with Raw(srv) as c:
        assert c.push("unique-0001", custom={"unique_for": 60}) == "OK"
        assert c.push("unique-0002", custom={"unique_for": 60}) != "OK"  # the same jobtype and args
        assert c.push("expiring-01", queue="old", custom={"expires_in": 1}) == "OK"
        assert c.push("keeping-01", queue="old") == "OK"
        assert c.push("tracked-01", queue="slow", custom={"track": 1}) == "OK"
        assert c.fetch("slow") is not None  # takes a throttle slot
        bid = c.cmd('BATCH NEW {"success":{"jobtype":"Done","args":[]}}').decode()
        c.cmd('BATCH NEW {"complete":{"jobtype":"Done","args":[]}}')
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"  # empty: fires, stays committed
        srv.advance(61)  # a cron tick; expiring-01 expired; unique-0001's lock ended
        fetched = c.fetch("old")  # drops expiring-01, hands out the next job
        assert fetched is not None and fetched["jid"] == "keeping-01"
    got = scrape(srv)
    assert got[("werk_server_batches", (("state", "open"),))] == 1
    assert got[("werk_server_batches", (("state", "committed"),))] == 1
    assert got[("werk_server_cron_entries", ())] == 1
    assert got[("werk_server_cron_jobs_total", ())] == 1
    assert got[("werk_server_throttle_limit", (("queue", "slow"),))] == 2
    assert got[("werk_server_throttle_in_use", (("queue", "slow"),))] == 1
    assert got[("werk_server_throttle_slots_taken_total", ())] == 1
    assert got[("werk_server_unique_refused_total", ())] == 1
    assert got[("werk_server_unique_locks", ())] == 0  # ended after unique_for
    assert got[("werk_server_expired_jobs_total", ())] == 1
    assert got[("werk_server_tracked_jobs", ())] == 1

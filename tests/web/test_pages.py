"""Every page renders what the server holds (plain HTTP against a real server + web UI)."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime

from tests.web.conftest import WebUI


def _fail(ui: WebUI, jobtype: str, *, retry: int, message: str = "boom") -> str:
    with ui.client() as c:
        jid = c.push(jobtype, 1, retry=retry, queue="work")
        job = c.fetch("work")
        assert job is not None and job.jid == jid
        c.fail(
            jid,
            message,
            errtype="ValueError",
            backtrace=[f"  File 'jobs.py', line 7, in {jobtype}"],
        )
    return jid


def test_dashboard_shows_totals_queues_and_server_facts(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        for i in range(3):
            c.push("Resize", i, queue="images")
        c.push("Mail", "a@b.c")
        ok = c.fetch("default")
        assert ok is not None
        c.ack(ok.jid)
    _fail(web_ui, "Charge", retry=3)
    page = web_ui.request("/")
    assert page.status == 200
    assert 'data-stat="processed" title="2">2<' in page.text
    assert 'data-stat="failures" title="1">1<' in page.text
    assert "/queues/images" in page.text
    assert "Faktory 1.10.0" in page.text
    assert re.search(r"<dt>Connections</dt><dd[^>]*>\d+</dd>", page.text)
    stats = json.loads(web_ui.request("/stats.json").text)
    assert (stats["processed"], stats["failures"], stats["retries"]) == (2, 1, 1)
    assert stats["queues"] == {"default": 0, "images": 3, "work": 0}


def test_history_counts_today(web_ui: WebUI) -> None:
    _fail(web_ui, "Charge", retry=3)
    page = web_ui.request("/?days=7")
    assert page.status == 200
    assert page.text.count('class="bar processed"') == 7
    assert ": 1 processed, 1 failed</title>" in page.text


def test_queues_page_and_paginated_queue(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jids = [c.push("Resize", i, queue="images") for i in range(30)]
        c.queue_pause("images")
    page = web_ui.request("/queues")
    assert page.status == 200
    assert 'data-queue="images"' in page.text and "paused" in page.text
    first = web_ui.request("/queues/images")
    assert all(jid in first.text for jid in jids[:25])
    assert jids[25] not in first.text
    assert "1\u201325 of 30" in first.text
    second = web_ui.request("/queues/images?page=2")
    assert all(jid in second.text for jid in jids[25:])
    assert jids[0] not in second.text
    assert web_ui.request("/queues/nope").status == 404
    assert web_ui.request("/queues/bad%20name").status == 400


def test_set_pages_and_job_page_with_backtrace(web_ui: WebUI) -> None:
    retry_jid = _fail(web_ui, "Charge", retry=3, message="card declined")
    dead_jid = _fail(web_ui, "Refund", retry=-1, message="gone for good")
    with web_ui.client() as c:
        sched = c.push(werk_job("Report", at_seconds=3600))
    retries = web_ui.request("/retries")
    assert retry_jid in retries.text and "card declined" in retries.text
    dead = web_ui.request("/dead")
    assert dead_jid in dead.text and "gone for good" in dead.text
    scheduled = web_ui.request("/scheduled")
    assert sched in scheduled.text and "in 59 minutes" in scheduled.text
    job = web_ui.request(f"/retries/{retry_jid}")
    assert job.status == 200
    assert "line 7, in Charge" in job.text  # the backtrace
    assert "card declined" in job.text and "ValueError" in job.text
    assert f'"jid": "{retry_jid}"' in html.unescape(job.text)  # the whole payload
    gone = web_ui.request("/retries/no-such-jid")
    assert gone.status == 303 and gone.headers["Location"].startswith("/retries?done=gone")
    assert web_ui.request("/morgue").headers["Location"] == "/dead"


def test_busy_page_lists_workers_and_reservations(web_ui: WebUI) -> None:
    with web_ui.client(wid="wid-busy-1", labels=["blue", "py"]) as w:
        assert w.beat(rss_kb=48812) is None
        w.push("Resize", 7, queue="images")
        job = w.fetch("images")
        assert job is not None
        page = web_ui.request("/busy")
        assert 'data-wid="wid-busy-1"' in page.text
        assert ">blue<" in page.text and ">py<" in page.text
        assert "47.7 MB" in page.text
        assert job.jid in page.text and "Resize" in page.text
        assert ">running<" in page.text


def test_static_assets_and_security_headers(web_ui: WebUI) -> None:
    css = web_ui.request("/static/werk.css")
    assert css.status == 200 and "prefers-color-scheme: dark" in css.text
    assert web_ui.request("/static/werk.js").status == 200
    page = web_ui.request("/")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def werk_job(jobtype: str, at_seconds: int) -> object:
    from datetime import timedelta

    import werk

    return werk.Job(jobtype, args=[], at=timedelta(seconds=at_seconds))


def test_set_pages_are_in_time_order_without_overlap(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jids = {c.push("Flaky", i, queue="f", retry=3) for i in range(30)}
        for _ in jids:
            job = c.fetch("f")
            assert job is not None
            c.fail(job.jid, "flaky")
    seen: list[str] = []
    times: list[str] = []
    for page in (1, 2):
        text = web_ui.request(f"/retries?page={page}").text
        seen += re.findall(r'name="jid" value="([^"]+)"', text)
        times += re.findall(r'<a href="/retries/[^"]+"><time datetime="([^"]+)"', text)
    assert len(seen) == 30 and set(seen) == jids  # 25 + 5, nothing twice, nothing lost
    moments = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times]
    assert len(moments) == 30 and moments == sorted(moments)  # soonest retry first
    assert web_ui.request("/retries?page=9").text.count('name="jid"') == 5  # last page

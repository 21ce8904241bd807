"""The Cron page: every entry with its schedule, job, next and last run; "Enqueue now"
pushes one job (POST, CSRF-checked); everything from the configuration is escaped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.server.seam_extension import Recorder
from tests.servers import MANUAL_EPOCH, ServerFactory
from tests.web.conftest import WebUI, _start, _stop

from werk.server import ManualClock
from werk.server._cron import Cron

T0 = MANUAL_EPOCH  # 2027-01-15 08:00:00 UTC

ENTRIES = [
    {
        "schedule": "*/5 * * * *",
        "job": {"type": "FiveJob", "queue": "critical", "args": [1, "<b>two</b>"]},
    },
    {
        "schedule": "0 9 * * MON-FRI",
        "job": {"type": "<script>alert(1)</script>", "custom": {"note": "<img src=x>"}},
    },
    {"schedule": "@hourly", "job": {"type": "Refused", "custom": {"refuse": "plain"}}},
]


@pytest.fixture
def cron_ui(make_server: ServerFactory) -> Iterator[WebUI]:
    srv = make_server(
        clock=ManualClock(T0 + 30),
        config={"cron": ENTRIES},
        extensions=[Cron(), Recorder()],  # the Recorder refuses "Refused" jobs
    )
    handle = _start(srv, None)
    yield WebUI(srv, handle)
    _stop(srv, handle)


def ids(ui: WebUI) -> list[str]:
    cron = next(e for e in ui.srv.manager.hooks.all if isinstance(e, Cron))  # type: ignore[union-attr]
    return [entry.id for entry in cron.entries]


def test_lists_the_entries_with_next_and_last_run(cron_ui: WebUI) -> None:
    cron_ui.srv.advance(300)  # 08:05:30: the five-minute entry fired
    page = cron_ui.request("/cron")
    assert page.status == 200
    five, report, _ = ids(cron_ui)
    row = page.text.split(f'data-entry="{five}"')[1].split("</tr>")[0]
    assert "*/5 * * * *" in row and "FiveJob" in row and "/queues/critical" in row
    assert 'class="nowrap next-run"><time datetime="2027-01-15T08:10:00' in row
    assert 'class="nowrap last-run"><time datetime="2027-01-15T08:05:00' in row
    row = page.text.split(f'data-entry="{report}"')[1].split("</tr>")[0]
    assert "2027-01-15T09:00:00" in row and "never" in row  # a Friday
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    assert page.text.count('name="action" value="enqueue"') == 3
    assert '<a href="/cron" class="tab active" aria-current="page">' in page.text


def test_the_entry_page_shows_args_custom_and_history(cron_ui: WebUI) -> None:
    cron_ui.srv.advance(300)
    five, report, _ = ids(cron_ui)
    page = cron_ui.request(f"/cron/{five}")
    assert page.status == 200
    assert "&#34;&lt;b&gt;two&lt;/b&gt;&#34;" in page.text and "<b>two</b>" not in page.text
    assert "<code>config[&#34;cron&#34;][0]</code>" in page.text  # where it was written
    with cron_ui.client() as c:
        job = c.fetch("critical")
    assert job is not None and f"<code>{job.jid}</code>" in page.text
    page = cron_ui.request(f"/cron/{report}")
    assert "&lt;img src=x&gt;" in page.text and "<img src=x>" not in page.text
    assert "No job pushed yet." in page.text
    assert cron_ui.request("/cron/0123456789abcdef").status == 404
    assert cron_ui.request("/cron/..%2Fqueues").status in (400, 404)


def test_enqueue_now_pushes_one_job(cron_ui: WebUI) -> None:
    five, report, _ = ids(cron_ui)
    resp = cron_ui.post(f"/cron/{report}", {"action": "enqueue"})
    assert resp.status == 303 and resp.headers["Location"] == "/cron?done=enqueued&n=1"
    with cron_ui.client() as c:
        job = c.fetch("default")
    assert job is not None and job.jobtype == "<script>alert(1)</script>"
    assert job.custom == {"note": "<img src=x>"}
    resp = cron_ui.post(f"/cron/{five}", {"action": "enqueue", "back": "entry"})
    assert resp.headers["Location"] == f"/cron/{five}?done=enqueued&n=1"
    page = cron_ui.request(resp.headers["Location"])
    assert "1 job enqueued now" in page.text and "never" in page.text  # last run unchanged
    assert cron_ui.srv.info()["queues"]["critical"] == 1


def test_a_refused_push_is_shown(cron_ui: WebUI) -> None:
    refused = ids(cron_ui)[2]
    resp = cron_ui.post(f"/cron/{refused}", {"action": "enqueue"})
    assert resp.status == 409
    assert "The server refused the job: <code>refused by the seam extension</code>" in resp.text
    assert cron_ui.srv.info()["queues"].get("default", 0) == 0


def test_enqueue_needs_the_csrf_token_and_a_known_entry(cron_ui: WebUI) -> None:
    five = ids(cron_ui)[0]
    resp = cron_ui.request(f"/cron/{five}", data={"action": "enqueue"})
    assert resp.status == 403
    assert cron_ui.post(f"/cron/{five}", {"action": "run"}).status == 400
    assert cron_ui.post("/cron/0123456789abcdef", {"action": "enqueue"}).status == 404
    assert cron_ui.post("/cron/nope", {"action": "enqueue"}).status == 400
    assert cron_ui.srv.info()["queues"].get("critical", 0) == 0


def test_without_cron_the_page_says_how(web_ui: WebUI) -> None:
    page = web_ui.request("/cron")
    assert page.status == 200 and "No cron entries" in page.text


@pytest.mark.slow
def test_in_a_browser_enqueue_now_and_the_history(browser: Any, cron_ui: WebUI) -> None:
    five = ids(cron_ui)[0]
    context = browser.new_context(base_url=cron_ui.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto("/")
        page.locator('nav.tabs a[href="/cron"]').click()
        page.wait_for_url("**/cron")
        row = page.locator(f'tr[data-entry="{five}"]')
        assert row.locator(".last-run").inner_text() == "never"
        assert row.locator(".next-run").inner_text() == "in 4 minutes"
        row.locator('button[value="enqueue"]').click()
        page.wait_for_url("**/cron?done=enqueued*")
        assert "1 job enqueued now" in page.locator(".notice").inner_text()
        assert cron_ui.srv.info()["queues"]["critical"] == 1
        page.locator(f'a[href="/cron/{five}"]').click()
        page.wait_for_url(f"**/cron/{five}")
        with cron_ui.client() as c:
            job = c.fetch("critical")
        assert job is not None
        assert page.locator("#history code").inner_text() == job.jid
        assert page.locator("h1 code.schedule").inner_text() == "*/5 * * * *"
        page.locator('button[value="enqueue"]').click()
        page.wait_for_url(f"**/cron/{five}?done=enqueued*")
        assert page.locator("#history tbody tr").count() == 2
    finally:
        context.close()
    assert errors == []

"""End to end in a real browser: Debian's Chromium, driven by Playwright, clicking the pages
of a real server's web UI, and checking the effects through the command port."""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from tests.web.conftest import WebUI

import werk

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, or fails under WERK_REQUIRE_BROWSER=1
    PlaywrightError = Exception  # type: ignore[misc,assignment]
    expect = None

pytestmark = pytest.mark.slow


@pytest.fixture
def page(browser: Any, web_ui: WebUI) -> Iterator[Any]:
    """A fresh browser tab on the web UI; confirmation dialogs are accepted."""
    context = browser.new_context(base_url=web_ui.url)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def test_dashboard_shows_the_counts_and_follows_them_live(page: Any, web_ui: WebUI) -> None:
    with web_ui.client() as c:
        for i in range(5):
            c.push("Resize", i)
        for i in range(5):
            job = c.fetch("default")
            assert job is not None
            if i < 2:
                c.fail(job.jid, "boom", errtype="IOError")
            else:
                c.ack(job.jid)
        page.goto("/")
        assert page.locator('.summary [data-stat="processed"]').inner_text() == "5"
        assert page.locator('.summary [data-stat="failures"]').inner_text() == "2"
        assert page.locator('.summary [data-stat="retries"]').inner_text() == "2"
        page.select_option("#poll-interval", "2000")
        c.push("Resize", 99)
        job = c.fetch("default")
        assert job is not None
        c.ack(job.jid)
        # The page polls /stats.json and moves the counter and the live graph by itself.
        expect(page.locator('.summary [data-stat="processed"]')).to_have_text("6", timeout=15_000)
        expect(page.locator("#live")).to_have_class(re.compile("has-data"), timeout=15_000)
        assert page.locator("#live .line.processed").get_attribute("d")


def test_pause_a_queue_and_fetch_skips_it(page: Any, web_ui: WebUI) -> None:
    with web_ui.client() as c:
        low = c.push("Low", 1, queue="low")
        high = c.push("High", 2, queue="high")
        page.goto("/queues")
        page.locator('tr[data-queue="low"] button[value="pause"]').click()
        page.wait_for_url("**/queues?done=pause*")
        assert page.locator('tr[data-queue="low"] .badge').inner_text() == "paused"
        job = c.fetch("low", "high")  # low comes first, but it is paused
        assert job is not None and job.jid == high
        page.locator('tr[data-queue="low"] button[value="resume"]').click()
        page.wait_for_url("**/queues?done=resume*")
        job = c.fetch("low", "high")
        assert job is not None and job.jid == low


def test_retry_dead_jobs_puts_them_back_on_their_queue(page: Any, web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jids = {c.push("Refund", i, queue="pay", retry=-1) for i in range(2)}
        for _ in jids:
            job = c.fetch("pay")
            assert job is not None
            c.fail(job.jid, "declined", errtype="CardError")
        assert web_ui.srv.info()["dead"] == 2
        page.goto("/dead")
        page.locator(".check-all").check()
        assert page.locator(".selected-count").inner_text() == "2 selected"
        page.locator('.bulk button[value="requeue"]').click()
        page.wait_for_url("**/dead?done=requeue*")
        assert "2 jobs sent back to their queue" in page.locator(".notice").inner_text()
        back = {job.jid for job in (c.fetch("pay"), c.fetch("pay")) if job is not None}
    assert back == jids
    assert web_ui.srv.info()["dead"] == 0


def test_job_page_shows_the_backtrace_and_kills(page: Any, web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jid = c.push("Charge", 1, queue="pay", retry=3)
        job = c.fetch("pay")
        assert job is not None
        trace = ['  File "billing.py", line 42, in charge', "    raise CardError()"]
        c.fail(jid, "card declined", errtype="CardError", backtrace=trace)
    page.goto("/retries")
    page.locator(f'a[href="/retries/{jid}"]').first.click()
    assert 'File "billing.py", line 42, in charge' in page.locator(".backtrace").inner_text()
    assert "card declined" in page.locator(".error-line").inner_text()
    page.locator('button[value="kill"]').click()
    page.wait_for_url("**/retries?done=kill*")
    info = web_ui.srv.info()
    assert (info["retries"], info["dead"]) == (0, 1)


def test_quiet_a_worker_and_its_next_beat_says_quiet(page: Any, web_ui: WebUI) -> None:
    with web_ui.client(wid="wid-browser-1", labels=["py"]) as worker:
        assert worker.beat(rss_kb=51200) is None
        page.goto("/busy")
        row = page.locator('tr[data-wid="wid-browser-1"]')
        assert "50.0 MB" in row.inner_text()
        row.locator('button[value="quiet"]').click()
        page.wait_for_url("**/busy?done=quiet*")
        assert page.locator('tr[data-wid="wid-browser-1"] .badge').inner_text() == "quiet"
        assert worker.beat() == "quiet"
        page.locator('.page-head button[value="terminate"]').click()  # Terminate all
        page.wait_for_url("**/busy?done=terminate*")
        assert worker.beat() == "terminate"


def test_script_in_args_stays_text(browser: Any, web_ui: WebUI) -> None:
    evil = "<script>window.__pwned = 1</script>"
    with web_ui.client() as c:
        c.push("<img src=x onerror=window.__pwned=2>", evil, queue="q")
    # Without the Content-Security-Policy, so escaping alone must keep the script out.
    context = browser.new_context(base_url=web_ui.url, bypass_csp=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.goto("/queues/q")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("code.args").inner_text() == f'"{evil}"'
    assert page.locator("code.jobtype").inner_text() == "<img src=x onerror=window.__pwned=2>"
    assert page.locator("script").count() == 1  # only our own werk.js
    assert dialogs == []
    context.close()


def test_post_from_another_origin_is_refused(page: Any, web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jid = c.push("A", 1, queue="q")
    evil_page = f"""<!doctype html><form method="post" action="{web_ui.url}/queues/q">
      <input name="action" value="remove"><input name="csrf" value="guessed"></form>
      <script>document.forms[0].submit()</script>"""
    page.route(
        "http://evil.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=evil_page),
    )
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.goto("http://evil.test/")
    assert posted.value.status == 403
    with web_ui.client() as c:
        job = c.fetch("q")
    assert job is not None and job.jid == jid  # the queue and its job are still there


def test_wrong_password_gets_401(browser: Any, web_ui_password: WebUI) -> None:
    url = web_ui_password.url + "/"

    def status(headers: dict[str, str]) -> int:
        context = browser.new_context(extra_http_headers=headers)
        page = context.new_page()
        # Headless Chromium ends a refused Basic challenge with a net error.
        with (
            page.expect_response(lambda r: r.url == url) as answer,
            contextlib.suppress(PlaywrightError),
        ):
            page.goto(url)
        context.close()
        return int(answer.value.status)

    def basic(password: str) -> dict[str, str]:
        token = base64.b64encode(f"ops:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    assert status({}) == 401
    assert status(basic("wrong")) == 401
    assert status(basic("test-password")) == 200


def test_batches_tab_a_batch_and_its_progress(page: Any, web_ui: WebUI) -> None:
    with web_ui.client() as c:
        parent = c.batch_new(description="Nightly <export>", success=werk.Job("ExportDone"))
        for i in range(4):
            c.push("Export", i, queue="exp", custom={"bid": parent}, retry=2)
        child = c.batch_new(description="Thumbnails", parent_bid=parent, complete=werk.Job("T"))
        c.batch_commit(child)
        c.batch_commit(parent)
        for outcome in ("ack", "ack", "ack", "fail"):
            job = c.fetch("exp")
            assert job is not None
            if outcome == "ack":
                c.ack(job.jid)
            else:
                c.fail(job.jid, "disk full", errtype="OSError")
                failed = job.jid
    page.goto("/")
    page.click("nav >> text=Batches")
    page.wait_for_url("**/batches")
    row = page.locator(f'tr[data-bid="{parent}"]')
    assert row.locator('[data-col="progress"]').inner_text().strip() == "3 / 4"
    bar = row.locator("progress")
    assert bar.evaluate("el => el.position") == 0.75  # the browser draws 3 of 4
    assert row.locator('[data-col="failed"]').inner_text() == "1"
    row.locator("a.batch-link").click()
    page.wait_for_url(f"**/batches/{parent}")
    assert page.locator("h1 .batch-description").inner_text() == "Nightly <export>"
    assert page.locator('[data-field="progress"]').inner_text().strip() == "75%"
    assert page.locator('tr[data-callback="success"] [data-col="state"]').inner_text() == "pending"
    page.locator("#find-jobs").click()  # the only member still in the server: the failed one
    page.wait_for_url(f"**/batches/{parent}?jobs=1*")
    assert page.locator("#jobs tbody tr").count() == 1
    assert (
        page.locator(f'#jobs tr[data-jid="{failed}"] [data-col="where"]').inner_text() == "retries"
    )
    page.locator(f'#failed a[href="/retries/{failed}"]').click()
    page.wait_for_url(f"**/retries/{failed}")
    assert "disk full" in page.locator(".error-line").inner_text()
    page.go_back()
    page.locator(f'#children tr[data-bid="{child}"] a.batch-link').click()
    page.wait_for_url(f"**/batches/{child}")
    assert page.locator('[data-status="succeeded"]').count() >= 1
    page.locator(f'[data-field="parent"] a[href="/batches/{parent}"]').click()
    page.wait_for_url(f"**/batches/{parent}")


def test_busy_shows_a_tracked_jobs_progress(page: Any, web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jid = c.push("Render", "movie.mp4", queue="video", custom={"track": 1})
        assert c.fetch("video") is not None
        c.track_set(jid, percent=30, description="encoding pass 1 of 3")
        page.goto("/busy")
        cell = page.locator(f'tr[data-jid="{jid}"] .track')
        assert cell.locator("progress").evaluate("el => el.value") == 30
        assert "encoding pass 1 of 3" in cell.inner_text()
        c.track_set(jid, percent=90, description="muxing")
        page.reload()
        cell = page.locator(f'tr[data-jid="{jid}"] .track')
        assert cell.locator("progress").evaluate("el => el.value") == 90
        assert "muxing" in cell.inner_text() and "90%" in cell.inner_text()

"""The Throttles page (limit, in use, waiting, the expired-job count) and a job page's
uniqueness and expiry, over plain HTTP and in a real browser, against a server whose
configuration declares throttles."""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from tests.servers import ServerFactory
from tests.web.conftest import WebUI, _start, _stop

import werk

THROTTLES = {
    "api": {"concurrency": 3, "timeout": 60},
    "bulk": {"worker": 2, "timeout": 90},
}


@pytest.fixture
def ui(make_server: ServerFactory) -> Iterator[WebUI]:
    srv = make_server(config={"throttles": THROTTLES}, fetch_timeout=0.2)
    handle = _start(srv, None)
    yield WebUI(srv, handle)
    _stop(srv, handle)


def _row(text: str, queue: str) -> dict[str, str]:
    match = re.search(rf'<tr data-throttle="{queue}">(.*?)</tr>', text, re.S)
    assert match is not None, text
    cells = re.findall(r'data-col="([a-z-]+)">([^<]*)<', match.group(1))
    return dict(cells)


def test_the_page_shows_limit_in_use_and_waiting(ui: WebUI) -> None:
    with ui.client() as c:
        c.push("Gone", 1, queue="api", expires_at="2001-01-01T00:00:00Z")
        for i in range(5):
            c.push("Call", i, queue="api")
        c.push("Load", 1, queue="bulk")
        for _ in range(2):
            assert c.fetch("api") is not None  # the expired job is dropped on the way
    page = ui.request("/throttles")
    assert page.status == 200
    assert _row(page.text, "api") == {"limit": "3", "in-use": "2", "free": "1", "waiting": "3"}
    # Per worker: no "free" across the fleet.
    assert _row(page.text, "bulk") == {"limit": "2", "in-use": "0", "free": "", "waiting": "1"}
    assert "3 concurrent" in page.text and "2 per worker" in page.text
    assert 'href="/throttles"' in page.text  # in the navigation
    with ui.client() as c:
        assert c.fetch("api") is not None
        assert c.fetch("api") is None  # full: skipped
    page = ui.request("/throttles")
    assert _row(page.text, "api") == {"limit": "3", "in-use": "3", "free": "0", "waiting": "2"}
    assert re.search(r'data-stat="expired">1 expired job was dropped', page.text)


def test_without_throttles_the_page_says_how_to_add_them(web_ui: WebUI) -> None:
    page = web_ui.request("/throttles")
    assert page.status == 200
    assert "No throttles configured" in page.text and "[throttles]" in page.text


def test_a_job_page_shows_its_uniqueness_and_expiry_escaped(ui: WebUI) -> None:
    jid = "<b>unique</b>&co"
    with ui.client() as c:
        c.push(
            "Report",
            7,
            jid=jid,
            at=timedelta(hours=1),
            unique_for=7200,
            unique_until="start",
            expires_at="2030-01-01T00:00:00Z",
        )
        c.push("Plain", 1, jid="plain-job-0001", at=timedelta(hours=1))
    page = ui.request("/scheduled/" + urllib.parse.quote(jid, safe=""))
    assert page.status == 200
    assert jid not in page.text  # never raw
    unique = re.search(r'data-field="unique">(.*?)</dd>', page.text, re.S)
    assert unique is not None
    text = html.unescape(re.sub(r"<[^>]+>", "", unique.group(1)))
    assert text.startswith("for 2h 0m, until start · lock held by <b>unique</b>&co (this job)")
    assert "2030-01-01T00:00:00Z" in page.text
    plain = ui.request("/scheduled/plain-job-0001")
    assert 'data-field="unique"' not in plain.text and 'data-field="expires"' not in plain.text


@pytest.mark.slow
def test_the_throttles_page_in_a_browser(browser: Any, ui: WebUI) -> None:
    context = browser.new_context(base_url=ui.url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        with werk.Client(ui.srv.url) as c:
            for i in range(4):
                c.push("Call", i, queue="api")
            assert c.fetch("api") is not None
        tab.goto("/")
        tab.click("nav >> text=Throttles")
        tab.wait_for_url("**/throttles")
        row = tab.locator('tr[data-throttle="api"]')
        assert row.locator('[data-col="in-use"]').inner_text() == "1"
        assert row.locator('[data-col="waiting"]').inner_text() == "3"
        row.locator("a", has_text="api").click()
        tab.wait_for_url("**/queues/api")
    finally:
        context.close()
    assert errors == []

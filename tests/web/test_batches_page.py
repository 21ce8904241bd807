"""The Batches pages and tracked jobs' progress, over plain HTTP against a real server:
batches made with a raw client (BATCH NEW, members pushed with ``custom.bid``, COMMIT),
worked with FETCH/ACK/FAIL, and the numbers and states the pages show for them."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from tests.servers import ServerFactory
from tests.web.conftest import WebUI, _start, _stop

import werk
from werk.server import EmbeddedServer
from werk.server._throttles import Throttles
from werk.web import WebHandle, _batch_backend, create_app
from werk.web._server_backend import ServerBackend
from werk.web._views import batches as batches_view


def _cells(text: str, bid: str) -> dict[str, str]:
    """The batch row of ``bid``: each data-col cell's text, tags stripped."""
    match = re.search(rf'<tr data-bid="{re.escape(bid)}">(.*?)</tr>', text, re.S)
    assert match is not None, f"no row for {bid}"
    cells = re.findall(r'data-col="([a-z-]+)">(.*?)</td>', match.group(1), re.S)
    return {k: " ".join(html.unescape(re.sub(r"<[^>]+>", " ", v)).split()) for k, v in cells}


def _field(text: str, name: str) -> str:
    match = re.search(rf'data-field="{name}">(.*?)</dd>', text, re.S)
    assert match is not None, f"no field {name}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def _work(c: werk.Client, queue: str, outcome: str) -> str:
    job = c.fetch(queue)
    assert job is not None
    if outcome == "ack":
        c.ack(job.jid)
    else:
        c.fail(job.jid, "boom", errtype="IOError")
    return job.jid


def test_the_list_shows_progress_counts_and_callback_states(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        bid = c.batch_new(
            description="Import images for user 1234",
            complete=werk.Job("ImportDone", args=[1]),
            success=werk.Job("ImportOk", args=[1], queue="cb"),
        )
        for i in range(4):
            c.push("Import", i, queue="imp", custom={"bid": bid}, retry=3)
        c.batch_commit(bid)
        _work(c, "imp", "ack")
        _work(c, "imp", "ack")
        _work(c, "imp", "fail")
        page = web_ui.request("/batches")
        assert page.status == 200
        assert "Import images for user 1234" in page.text
        assert _cells(page.text, bid) == {
            "progress": "2 / 4",
            "pending": "2",
            "failed": "1",
            "complete": "pending",
            "success": "pending",
        }
        assert '<progress class="progress" value="50" max="100"' in page.text
        assert '<a href="/batches" class="tab active" aria-current="page">' in page.text
        # The last member fails: every member ran once, so complete fires.
        _work(c, "imp", "fail")
        row = _cells(web_ui.request("/batches").text, bid)
        assert (row["pending"], row["failed"], row["complete"], row["success"]) == (
            "2",
            "2",
            "enqueued",
            "pending",
        )
        done = c.fetch("default")
        assert done is not None and done.jobtype == "ImportDone"
        busy = web_ui.request("/busy").text.split(f'<tr data-jid="{done.jid}">')[1]
        assert f'href="/batches/{bid}" title="Callback of batch {bid}">complete callback<' in busy
        c.ack(done.jid)
        row = _cells(web_ui.request("/batches").text, bid)
        assert (row["complete"], row["success"]) == ("succeeded", "pending")
        assert c.batch_status(bid).complete_state is werk.CallbackState.SUCCEEDED


def test_a_batch_page_shows_status_callbacks_children_and_failed_members(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        parent = c.batch_new(description="parent", success=werk.Job("ParentOk"))
        c.push("Step", 1, queue="p", custom={"bid": parent}, retry=5)
        child = c.batch_new(
            description="child", parent_bid=parent, complete=werk.Job("ChildDone", queue="cb")
        )
        c.push("Leaf", 1, queue="ch", custom={"bid": child})
        c.batch_commit(child)
        c.batch_commit(parent)
        failed_jid = _work(c, "p", "fail")
        page = web_ui.request(f"/batches/{parent}")
        assert page.status == 200
        assert _field(page.text, "bid") == parent
        assert _field(page.text, "parent") == "none (a top-level batch)"
        assert _field(page.text, "committed") == "yes"
        assert _field(page.text, "counts") == "1 total · 0 succeeded · 1 pending · 1 failed"
        assert f'<tr data-bid="{child}">' in page.text  # the child, linked
        assert f'href="/batches/{child}"' in page.text
        assert f'<a href="/retries/{failed_jid}"><code>{failed_jid}</code></a>' in page.text
        assert "waiting for a retry" in page.text
        success = re.search(r'data-callback="success">(.*?)</tr>', page.text, re.S)
        assert success is not None and ">pending<" in success.group(1)
        assert 'data-callback="complete"' not in page.text  # the parent has none

        child_page = web_ui.request(f"/batches/{child}")
        assert f'<a href="/batches/{parent}"><code>{parent}</code></a>' in child_page.text
        # The child's member in progress is listed on its page.
        leaf = c.fetch("ch")
        assert leaf is not None
        child_page = web_ui.request(f"/batches/{child}")
        assert f'<tr data-jid="{leaf.jid}">' in child_page.text
        busy = web_ui.request("/busy").text.split(f'<tr data-jid="{leaf.jid}">')[1]
        assert f'href="/batches/{child}" title="Member of batch {child}">batch<' in busy
        c.ack(leaf.jid)
        child_page = web_ui.request(f"/batches/{child}")
        assert _field(child_page.text, "counts") == "1 total · 1 succeeded · 0 pending · 0 failed"
        assert 'data-status="succeeded"' in child_page.text
        assert "No member is being worked on." in child_page.text
        cb = re.search(r'data-callback="complete">(.*?)</tr>', child_page.text, re.S)
        assert cb is not None and ">enqueued<" in cb.group(1) and "ChildDone" in cb.group(1)


def test_filters_and_paging(web_ui: WebUI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_batch_backend, "CHUNK", 7)  # a filter spans loop turns
    with web_ui.client() as c:
        bids = []
        for i in range(30):
            bid = c.batch_new(description=f"batch {i:02d}", success=werk.Job("Ok"))
            bids.append(bid)
            if i < 3:
                c.push("M", i, queue=f"q{i}", custom={"bid": bid})
            c.batch_commit(bid)
        _work(c, "q0", "fail")
    first = web_ui.request("/batches")
    assert first.text.count("<tr data-bid=") == 25
    assert "batch 29" in first.text and "batch 04" not in first.text  # newest first
    second = web_ui.request("/batches?page=2")
    assert second.text.count("<tr data-bid=") == 5 and "batch 00" in second.text
    failed = web_ui.request("/batches?state=failed")
    assert failed.text.count("<tr data-bid=") == 1 and f'data-bid="{bids[0]}"' in failed.text
    running = web_ui.request("/batches?state=running")
    assert {m for m in re.findall(r'<tr data-bid="([^"]+)"', running.text)} == set(bids[:3])
    succeeded = web_ui.request("/batches?state=succeeded&page=2")
    assert succeeded.text.count("<tr data-bid=") == 2  # 27 empty batches, 25 per page
    # An empty committed batch has succeeded: a full bar.
    assert _cells(succeeded.text, bids[3])["progress"] == "0 / 0"
    assert '<progress class="progress" value="100" max="100"' in succeeded.text
    assert 'href="/batches?page=1&amp;state=succeeded"' in succeeded.text
    assert web_ui.request("/batches?state=<bogus>&page=x").status == 200  # all, page 1


def test_a_hostile_description_is_escaped(web_ui: WebUI) -> None:
    evil = "<script>alert(1)</script>&<b>"
    with web_ui.client() as c:
        bid = c.batch_new(description=evil, success=werk.Job("<img src=x>"))
        c.push("M", 1, custom={"bid": bid})
    for path in ("/batches", f"/batches/{bid}"):
        text = web_ui.request(path).text
        assert "<script>alert" not in text and "<b>" not in text and "<img src=x>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&lt;b&gt;" in text
    assert 'data-status="open"' in web_ui.request(f"/batches/{bid}").text


def test_unknown_or_malformed_bids_are_404(web_ui: WebUI) -> None:
    for bid in ("b-doesnotexist00", "not-a-bid", "b-%3Cscript%3E", "b-" + "x" * 200):
        page = web_ui.request(f"/batches/{bid}")
        assert page.status == 404, bid
        assert "There is no such batch" in page.text
    assert "<script>" not in web_ui.request("/batches/b-%3Cscript%3E").text


def test_tracked_progress_on_the_busy_page(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        tracked = c.push("Render", 1, queue="t", custom={"track": 1})
        plain = c.push("Plain", 2, queue="t")
        assert c.fetch("t") is not None and c.fetch("t") is not None
        page = web_ui.request("/busy")
        row = page.text.split(f'<tr data-jid="{tracked}">')[1].split("</tr>")[0]
        assert ">working<" in row  # tracked, no progress reported yet
        c.track_set(tracked, percent=42, description="frame <42> of 100")
        page = web_ui.request("/busy")
    assert "<th>Progress</th>" in page.text
    row = page.text.split(f'<tr data-jid="{tracked}">')[1].split("</tr>")[0]
    assert '<progress class="progress" value="42" max="100"' in row and "42%" in row
    assert "frame &lt;42&gt; of 100" in row
    plain_row = page.text.split(f'<tr data-jid="{plain}">')[1].split("</tr>")[0]
    assert "<progress" not in plain_row


def test_a_job_page_shows_its_track(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jid = c.push("Render", 1, queue="t", custom={"track": 1}, retry=3)
        assert c.fetch("t") is not None
        c.track_set(jid, percent=70, description="almost <there>")
        c.fail(jid, "boom")
        untracked = c.push("Plain", 1, queue="u", retry=3)
        assert c.fetch("u") is not None
        c.fail(untracked, "boom")
    page = web_ui.request(f"/retries/{jid}")
    assert page.status == 200
    track = _field(page.text, "track")
    assert track.startswith("failed 70% almost <there> updated")
    assert 'data-track-state="failed"' in page.text and "almost &lt;there&gt;" in page.text
    assert 'data-field="track"' not in web_ui.request(f"/retries/{untracked}").text


def test_member_and_callback_job_pages_link_their_batch(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        bid = c.batch_new(complete=werk.Job("Done", queue="cb", retry=3))
        jid = c.push("M", 1, queue="m", custom={"bid": bid}, retry=-1)
        assert c.fetch("m") is not None
        c.fail(jid, "boom")
        c.batch_commit(bid)
        callback = c.fetch("cb")  # every member ran: complete fired
        assert callback is not None
        c.fail(callback.jid, "callback broke")
    page = web_ui.request(f"/dead/{jid}")
    assert _field(page.text, "batch") == bid
    assert f'<a href="/batches/{bid}"><code>{bid}</code></a>' in page.text
    batch = web_ui.request(f"/batches/{bid}")
    assert f'<a href="/dead/{jid}">' in batch.text and ">dead<" in batch.text
    cb_page = web_ui.request(f"/retries/{callback.jid}")
    assert _field(cb_page.text, "callback-of") == f"complete callback of batch {bid}"
    assert f'<a href="/batches/{bid}"><code>{bid}</code></a>' in cb_page.text
    # A failing callback retries; its state stays "enqueued".
    row = re.search(r'data-callback="complete">(.*?)</tr>', batch.text, re.S)
    assert row is not None and ">enqueued<" in row.group(1) and callback.jid in row.group(1)


@pytest.fixture
def plain_ui(make_server: ServerFactory) -> Iterator[WebUI]:
    """A server without the batches and tracking extensions."""
    srv = make_server(extensions=[Throttles()])
    handle = _start(srv, None)
    yield WebUI(srv, handle)
    _stop(srv, handle)


def test_without_the_extension_there_is_no_batches_tab(plain_ui: WebUI) -> None:
    with plain_ui.client() as c:
        jid = c.push("Render", 1, queue="t", custom={"track": 1, "bid": "b-whatever00000"})
        assert c.fetch("t") is not None
        busy = plain_ui.request("/busy")
    assert busy.status == 200 and jid in busy.text
    assert 'href="/batches"' not in busy.text and "<th>Progress</th>" not in busy.text
    assert "/batches/b-whatever" not in busy.text
    for path in ("/batches", "/batches/b-whatever00000"):
        page = plain_ui.request(path)
        assert page.status == 404 and "does not run batches" in page.text
    assert 'href="/throttles"' in plain_ui.request("/").text  # other tabs stay


class _OlderBackend:
    """A backend written before batches and tracking: the methods the pages had then."""

    KNOWN = frozenset(
        [
            "now",
            "stats",
            "queues",
            "queue_jobs",
            "set_entries",
            "set_entry",
            "mutate",
            "pause_queues",
            "resume_queues",
            "remove_queues",
            "delete_queue_jobs",
            "workers",
            "reservations",
            "signal_workers",
            "history",
            "throttles",
            "expired_jobs",
            "unique_lock",
            "cron_entries",
            "cron_enqueue",
        ]
    )

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name not in self.KNOWN:
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_backend_without_batches_or_tracking_degrades(faktory_server: EmbeddedServer) -> None:
    backend = _OlderBackend(ServerBackend(faktory_server))

    async def start() -> WebHandle:
        runner = web.AppRunner(create_app(backend), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
        return WebHandle("127.0.0.1", int(port), runner)

    loop = faktory_server.server.loop
    handle = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    ui = WebUI(faktory_server, handle)
    try:
        with ui.client() as c:
            bid = c.batch_new(success=werk.Job("Ok"))
            jid = c.push("Render", 1, queue="t", custom={"track": 1, "bid": bid}, retry=2)
            assert c.fetch("t") is not None
            c.track_set(jid, percent=50, description="half")
            busy = ui.request("/busy")
            c.fail(jid, "boom")
        assert busy.status == 200 and jid in busy.text
        assert 'href="/batches' not in busy.text and "half" not in busy.text
        assert ui.request("/batches").status == 404
        job = ui.request(f"/retries/{jid}")
        assert job.status == 200 and 'data-field="track"' not in job.text
        assert f"<code>{bid}</code>" in job.text and f'href="/batches/{bid}"' not in job.text
    finally:
        asyncio.run_coroutine_threadsafe(handle.close(), loop).result(30)


def test_failed_members_are_listed_up_to_a_limit_with_where_they_are(
    web_ui: WebUI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches_view, "FAILED_SHOWN", 3)
    monkeypatch.setattr(_batch_backend, "CHUNK", 2)
    with web_ui.client() as c:
        bid = c.batch_new(success=werk.Job("Ok"))
        for i, (jid, retry) in enumerate(
            (("member-a", 5), ("member-b", -1), ("member-c", 5), ("member-d", 5))
        ):
            c.push("M", i, jid=jid, queue="m", custom={"bid": bid}, retry=retry)
        for i in range(6):
            c.push("Other", i, queue="o", retry=5)  # retries the lookup walks past
        for _ in range(6):
            _work(c, "o", "fail")
        for _ in range(4):
            _work(c, "m", "fail")
        c.mutate(werk.Mutation.requeue(werk.Target.RETRIES).jids("member-c"))
        again = c.fetch("m")  # member-c is being retried now
        assert again is not None and again.jid == "member-c"
    page = web_ui.request(f"/batches/{bid}")
    failed = page.text.split('id="failed"')[1]
    rows = re.findall(r'<tr data-jid="(member-[a-d])">.*?data-col="where">([^<]*)<', failed, re.S)
    assert rows == [
        ("member-a", "waiting for a retry"),
        ("member-b", "dead"),
        ("member-c", "being retried now"),
    ]
    assert "The first 3 of 4." in page.text
    working = page.text.split('id="working"')[1].split("</table>")[0]
    assert '<tr data-jid="member-c">' in working
    assert '<a href="/dead/member-b">' in page.text and '<a href="/retries/member-a">' in page.text


def test_a_batch_page_finds_its_jobs_on_request(
    web_ui: WebUI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batch_backend, "CHUNK", 2)
    with web_ui.client() as c:
        bid = c.batch_new(complete=werk.Job("Done", queue="cb"))
        other = c.batch_new(success=werk.Job("Ok"))
        member = {"custom": {"bid": bid}}
        c.push("Waiting", 1, jid="queued-member", queue="a", **member)
        c.push("Later", 2, jid="scheduled-member", at=timedelta(hours=1), **member)
        c.push("Flaky", 3, jid="retry-member", queue="b", retry=3, **member)
        c.push("Doomed", 4, jid="dead-member", queue="b", retry=-1, **member)
        c.push("Busy", 5, jid="busy-member", queue="c", **member)
        c.push("Done", 6, jid="done-member", queue="d", **member)
        c.push("Lookalike", {"bid": bid}, jid="not-a-member", queue="a")  # only in args
        c.push("Other", 7, jid="other-member", queue="a", custom={"bid": other})
        for q, outcome in (("b", "fail"), ("b", "fail"), ("c", "keep"), ("d", "ack")):
            job = c.fetch(q)
            assert job is not None
            if outcome == "fail":
                c.fail(job.jid, "boom")
            elif outcome == "ack":
                c.ack(job.jid)
        c.batch_commit(bid)
    page = web_ui.request(f"/batches/{bid}")
    assert 'id="find-jobs"' in page.text and 'id="jobs"' not in page.text  # not looked yet
    page = web_ui.request(f"/batches/{bid}?jobs=1")
    section = page.text.split('id="jobs-card"')[1]
    found = dict(
        (jid, " ".join(html.unescape(re.sub(r"<[^>]+>", " ", where)).split()))
        for jid, where in re.findall(
            r'<tr data-jid="([^"]+)">\s*<td data-col="where">(.*?)</td>', section, re.S
        )
    )
    assert found == {
        "busy-member": "in progress",
        "queued-member": "queue a",
        "scheduled-member": "scheduled",
        "retry-member": "retries",
        "dead-member": "dead",
    }
    assert 'data-count="found">5<' in section
    assert '<a href="/retries/retry-member">' in section
    monkeypatch.setattr(batches_view, "JOBS_SHOWN", 2)
    section = web_ui.request(f"/batches/{bid}?jobs=1").text.split('id="jobs-card"')[1]
    assert section.count("<tr data-jid=") == 2 and "The first 2 found of 5." in section
    other_page = web_ui.request(f"/batches/{other}?jobs=1").text
    assert "other-member" in other_page and "queued-member" not in other_page
    with web_ui.client() as c:
        empty = c.batch_new(success=werk.Job("Ok"))
    assert "No job of this batch is in the server now" in (
        web_ui.request(f"/batches/{empty}?jobs=1").text
    )

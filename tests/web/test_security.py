"""Password, CSRF and escaping: what the web UI refuses, and that refusing changes nothing."""

from __future__ import annotations

import re

from tests.web.conftest import WebUI

import werk


def test_password_is_required_on_every_page(web_ui_password: WebUI) -> None:
    ui = web_ui_password
    with ui.client() as c:
        bid = c.batch_new(description="secret import", success=werk.Job("Done"))
    pages = ("/", "/queues", "/stats.json", "/static/werk.css", "/dead/x", "/batches")
    for path in (*pages, f"/batches/{bid}", "/batches/b-unknown0000000"):
        resp = ui.request(path, password=None)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"].startswith("Basic ")
        assert "secret import" not in resp.text and bid not in resp.text
    assert "secret import" in ui.request(f"/batches/{bid}").text
    assert ui.request("/", password="wrong").status == 401
    assert ui.request("/", password="test-password ").status == 401
    assert ui.request("/").status == 200  # any user name, the server's password


def test_wrong_password_cannot_change_anything(web_ui_password: WebUI) -> None:
    ui = web_ui_password
    with ui.client() as c:
        c.push("A", 1, queue="q")
    token = ui.csrf()
    resp = ui.request("/queues/q", {"csrf": token, "action": "remove"}, password="wrong")
    assert resp.status == 401
    assert ui.srv.info()["queues"] == {"q": 1}


def test_post_from_another_origin_is_refused(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        c.push("A", 1, queue="q")
    token = web_ui.csrf()
    form = {"csrf": token, "action": "pause"}
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": "http://evil.example/page"},
    ):
        resp = web_ui.request("/queues/q", form, headers=headers)
        assert resp.status == 403, headers
    with web_ui.client() as c:
        assert c.fetch("q") is not None  # never paused
    same = {"Origin": web_ui.url, "Sec-Fetch-Site": "same-origin"}
    assert web_ui.request("/queues/q", form, headers=same).status == 303


def test_post_without_the_csrf_token_is_refused(web_ui: WebUI) -> None:
    with web_ui.client(wid="wid-csrf") as w:
        assert web_ui.request("/busy", {"wid": "all", "signal": "terminate"}).status == 403
        web_ui.csrf()  # the cookie is set, but the form still lacks the field
        resp = web_ui.request("/busy", {"wid": "all", "signal": "terminate", "csrf": "x" * 43})
        assert resp.status == 403
        assert w.beat() is None  # still running


def test_state_changes_need_post(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        c.push("A", 1, queue="q")
    assert web_ui.request("/queues/q/delete").status == 405
    assert web_ui.request("/busy?wid=all&signal=quiet").status == 200  # just the page
    assert web_ui.srv.info()["queues"] == {"q": 1}


def test_job_fields_are_escaped(web_ui: WebUI) -> None:
    evil = "<script>alert(1)</script>"
    with web_ui.client(wid="<b>wid</b>", labels=[evil]) as c:
        c.beat()
        c.push("<img src=x onerror=alert(2)>", evil, queue="q")
        c.push("Evil", {"html": evil}, queue="q2", retry=-1)
        job = c.fetch("q2")
        assert job is not None
        c.fail(job.jid, evil, errtype="<i>Err</i>", backtrace=[evil])
        pages = [
            web_ui.request(p).text for p in ("/queues/q", "/busy", "/dead", f"/dead/{job.jid}")
        ]
    for text in pages:
        assert "<script>alert" not in text
        assert "<img src=x" not in text and "<i>Err" not in text and "<b>wid" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;" in pages[1] and "&lt;b&gt;wid&lt;/b&gt;" in pages[1]
    assert "&lt;i&gt;Err&lt;/i&gt;" in pages[3] and pages[3].count("&lt;script&gt;") >= 3


def test_every_post_route_refuses_a_form_without_the_token(web_ui: WebUI) -> None:
    # Enumerated from the router: a route added later is covered without editing this test.
    routes = [r for r in web_ui.handle.runner.app.router.routes() if r.method == "POST"]
    paths = sorted(
        re.sub(
            r"\{(\w+)[^}]*\}",
            lambda m: {"name": "q"}.get(m.group(1), "dead"),
            r.get_info().get("formatter", r.get_info().get("path", "")),
        )
        for r in routes
    )
    assert len(paths) >= 5, paths  # queues, queue delete, busy, set, set job
    with web_ui.client() as c:
        c.push("A", 1, queue="q")
    form = {"action": "remove", "signal": "terminate", "wid": "all", "csrf": "x" * 43}
    web_ui.csrf()  # the browser has its cookie; the forms carry the wrong token
    for path in paths:
        assert web_ui.request(path, form).status == 403, path
        no_token = {k: v for k, v in form.items() if k != "csrf"}
        assert web_ui.request(path, no_token).status == 403, path
    assert web_ui.srv.info()["queues"] == {"q": 1}

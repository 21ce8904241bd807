"""Every button does the protocol's own operation (checked through the command port)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.servers import ServerFactory
from tests.web.conftest import WebUI, _start, _stop

import werk


def _dead_and_retry(ui: WebUI) -> tuple[str, str]:
    with ui.client() as c:
        dead = c.push("Refund", 1, queue="pay", retry=-1)
        retry = c.push("Charge", 2, queue="pay", retry=5)
        for _ in range(2):
            job = c.fetch("pay")
            assert job is not None
            c.fail(job.jid, "nope", errtype="Declined")
    return dead, retry


def test_retry_dead_job_puts_it_back_on_its_queue(web_ui: WebUI) -> None:
    dead, _ = _dead_and_retry(web_ui)
    resp = web_ui.post(f"/dead/{dead}", {"action": "requeue"})
    assert resp.status == 303 and resp.headers["Location"] == "/dead?done=requeue&n=1"
    assert web_ui.srv.info()["dead"] == 0
    with web_ui.client() as c:
        job = c.fetch("pay")
    # MUTATE requeue: the stored payload, failure kept, back on its own queue.
    assert job is not None and job.jid == dead
    assert job.failure is not None and job.failure.errtype == "Declined"


def test_kill_and_delete_selected_retries(web_ui: WebUI) -> None:
    _, retry = _dead_and_retry(web_ui)
    web_ui.post("/retries", {"action": "kill", "jid": [retry]})
    info = web_ui.srv.info()
    assert (info["retries"], info["dead"]) == (0, 2)
    web_ui.post("/dead", {"action": "discard", "jid": [retry]})
    assert web_ui.srv.info()["dead"] == 1
    # Nothing selected changes nothing (an empty jid list must not mean "all").
    resp = web_ui.post("/dead", {"action": "discard"})
    assert resp.headers["Location"] == "/dead?done=none&n="
    assert web_ui.srv.info()["dead"] == 1


def test_all_actions_cover_the_whole_set(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        for i in range(30):
            c.push(werk.Job("Report", args=[i], at=timedelta(hours=1), queue="later"))
    web_ui.post("/scheduled", {"action": "requeue", "scope": "all"})
    info = web_ui.srv.info()
    assert info["scheduled"] == 0 and info["queues"]["later"] == 30


def test_kill_scheduled_job_from_its_page(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jid = c.push(werk.Job("Report", args=[], at=timedelta(hours=1)))
    web_ui.post(f"/scheduled/{jid}", {"action": "kill"})
    info = web_ui.srv.info()
    assert (info["scheduled"], info["dead"]) == (0, 1)
    # Dead has no "kill": the page refuses it instead of guessing.
    assert web_ui.post(f"/dead/{jid}", {"action": "kill"}).status == 400
    assert web_ui.srv.info()["dead"] == 1


def test_pause_resume_remove_queue(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        c.push("A", 1, queue="low")
        c.push("B", 2, queue="high")
        assert web_ui.post("/queues/low", {"action": "pause"}).status == 303
        job = c.fetch("low", "high")  # low is asked first, but paused: FETCH skips it
        assert job is not None and job.jobtype == "B"
        web_ui.post("/queues/low", {"action": "resume"})
        job = c.fetch("low", "high")
        assert job is not None and job.jobtype == "A"
        c.push("C", 3, queue="high")
        web_ui.post("/queues/high", {"action": "remove"})
    assert web_ui.srv.info()["queues"] == {"low": 0}  # high and its job are gone
    assert web_ui.post("/queues/low", {"action": "explode"}).status == 400


def test_delete_one_job_from_a_queue_keeps_the_others(web_ui: WebUI) -> None:
    with web_ui.client() as c:
        jids = [c.push("A", i, queue="q") for i in range(4)]
        resp = web_ui.post("/queues/q/delete", {"only": jids[1], "jid": [jids[2]]})
        assert resp.headers["Location"] == "/queues/q?done=deleted&n=1"
        web_ui.post("/queues/q/delete", {"jid": [jids[3], "no-such-jid"]})
        left = [c.fetch("q") for _ in range(2)]
    assert [j.jid for j in left if j is not None] == [jids[0], jids[2]]
    assert web_ui.srv.info()["queues"]["q"] == 0


def test_quiet_then_terminate_reach_the_next_beat(web_ui: WebUI) -> None:
    with web_ui.client(wid="wid-web-1") as w1, web_ui.client(wid="wid-web-2") as w2:
        assert w1.beat() is None and w2.beat() is None
        web_ui.post("/busy", {"wid": "wid-web-1", "signal": "quiet"})
        assert w1.beat() == "quiet"
        assert w1.beat() == "quiet"  # repeated on every BEAT
        assert w2.beat() is None  # only the chosen worker
        web_ui.post("/busy", {"wid": "all", "signal": "terminate"})
        assert w1.beat() == "terminate" and w2.beat() == "terminate"
        web_ui.post("/busy", {"wid": "wid-web-1", "signal": "quiet"})
        assert w1.beat() == "terminate"  # never backwards
    assert web_ui.post("/busy", {"wid": "x", "signal": "pause"}).status == 400


def test_deleting_queue_jobs_is_durable(make_server: ServerFactory, tmp_path: Path) -> None:
    # SQLite storage: the page answers only once the deletion is stored, and a restart
    # brings back exactly the jobs that were kept, in their order.
    srv = make_server(storage="sqlite", data_dir=tmp_path)
    handle = _start(srv, None)
    try:
        ui = WebUI(srv, handle)
        with ui.client() as c:
            jids = [c.push("A", i, queue="q") for i in range(5)]
        resp = ui.post("/queues/q/delete", {"jid": [jids[1], jids[3]]})
        assert resp.headers["Location"] == "/queues/q?done=deleted&n=2"
    finally:
        _stop(srv, handle)
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path)
    with werk.Client(srv.url) as c:
        assert srv.info()["queues"]["q"] == 3
        kept = [c.fetch("q") for _ in range(3)]
    assert [j.jid for j in kept if j is not None] == [jids[0], jids[2], jids[4]]

"""The ``removed`` hook of server extensions: every way a job leaves the server other than
FETCH, ACK and FAIL reports it once, with how it left (MUTATE kill, discard, requeue and
clear on each set, QUEUE REMOVE, the web UI's deletes and set actions, the dead set's
purge, a due job whose queue name is unusable), over TCP on the manual clock."""

from __future__ import annotations

from typing import Any

import pytest
from tests.server.batchkit import fail, mutate, take, web
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock
from werk.server._extension import DELETED, KILLED, REQUEUED, Extension
from werk.server._manager import DEAD_TTL
from werk.web._server_backend import ServerBackend

T0 = MANUAL_EPOCH
LATER = epoch_to_string(T0 + 3600)


class Recorder(Extension):
    """Records every removal it hears of, and where the job was at that moment."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.queued_then: list[bool] = []

    def removed(self, jid: str, payload: bytes, how: str) -> None:
        self.seen.append((jid, how))
        queue = self.host.codec.loads(payload)["queue"]
        manager: Any = self.host
        self.queued_then.append(any(item.jid == jid for item in manager.queues.get(queue, ())))


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def srv(make_server: ServerFactory, rec: Recorder) -> EmbeddedServer:
    return make_server(clock=ManualClock(T0), extensions=[rec])


def seen(srv: EmbeddedServer, rec: Recorder) -> list[tuple[str, str]]:
    return srv.call(lambda: list(rec.seen))


def to_retries(c: Raw, *jids: str, **fields: Any) -> None:
    for jid in jids:
        c.push(jid, **fields)
        fail(c, take(c)["jid"])


def to_dead(c: Raw, *jids: str, **fields: Any) -> None:
    to_retries(c, *jids, retry=-1, **fields)


def test_mutate_reports_each_job_with_custom_once(srv: EmbeddedServer, rec: Recorder) -> None:
    with Raw(srv) as c:
        c.push("sched-kill-1", at=LATER, custom={"x": 1})
        c.push("sched-plain-1", at=LATER)  # no custom: nothing to report
        to_retries(c, "retry-requeue", custom={"x": 1})
        to_retries(c, "retry-discard", custom={"x": 1})
        mutate(c, "kill", "scheduled")
        mutate(c, "requeue", "retries", jids=["retry-requeue"])
        mutate(c, "discard", "retries", jobtype="T")
        assert seen(srv, rec) == [
            ("sched-kill-1", KILLED),
            ("retry-requeue", REQUEUED),
            ("retry-discard", DELETED),
        ]
        # The requeue is reported before the job is back in its queue (where a blocked
        # FETCH may take it at once).
        assert srv.call(lambda: rec.queued_then[1]) is False
        # Killing what is dead already moves nothing anywhere new.
        mutate(c, "kill", "dead")
        assert len(seen(srv, rec)) == 3
        assert srv.info()["dead"] == 2


@pytest.mark.parametrize("target", ["scheduled", "retries", "dead"])
@pytest.mark.parametrize("how", [{"cmd": "clear"}, {"cmd": "discard"}])
def test_emptying_a_set_reports_its_jobs_with_custom(
    srv: EmbeddedServer, rec: Recorder, target: str, how: dict[str, str]
) -> None:
    with Raw(srv) as c:
        for jid, fields in (("custom-01", {"custom": {"x": 1}}), ("plain-001", {})):
            if target == "scheduled":
                c.push(jid, at=LATER, **fields)
            elif target == "retries":
                to_retries(c, jid, **fields)
            else:
                to_dead(c, jid, **fields)
        mutate(c, how["cmd"], target)
        assert seen(srv, rec) == [("custom-01", DELETED)]
        assert srv.info()[target] == 0


def test_queue_remove_and_the_web_ui_report_deleted_jobs(
    srv: EmbeddedServer, rec: Recorder
) -> None:
    backend = ServerBackend(srv.server)
    with Raw(srv) as c:
        for jid in ("q1-custom-01", "q1-custom-02", "q1-plain-001"):
            custom = {} if "plain" in jid else {"custom": {"x": 1}}
            c.push(jid, queue="q1", **custom)
        c.push("q2-custom-01", queue="q2", custom={"x": 1})
        c.push("q2-custom-02", queue="q2", custom={"x": 1})
        assert web(srv, backend.delete_queue_jobs("q2", ["q2-custom-01", "q2-nowhere"])) == 1
        assert c.cmd("QUEUE REMOVE q1") == "OK"
        web(srv, backend.remove_queues(["q2"]))
        assert seen(srv, rec) == [
            ("q2-custom-01", DELETED),
            ("q1-custom-01", DELETED),
            ("q1-custom-02", DELETED),
            ("q2-custom-02", DELETED),
        ]
        # The set pages' buttons are MUTATEs filtered by jid.
        to_dead(c, "dead-web-01", "dead-web-02", custom={"x": 1})
        web(srv, backend.mutate("requeue", "dead", ["dead-web-01"]))
        web(srv, backend.mutate("discard", "dead", ["dead-web-02"]))
        assert seen(srv, rec)[4:] == [("dead-web-01", REQUEUED), ("dead-web-02", DELETED)]


def test_flush_reports_no_job(srv: EmbeddedServer, rec: Recorder) -> None:
    with Raw(srv) as c:
        c.push("flushed-0001", custom={"x": 1})
        to_dead(c, "flushed-0002", custom={"x": 1})
        assert c.cmd("FLUSH") == "OK"
        assert seen(srv, rec) == []


def test_the_server_reports_what_it_drops_itself(srv: EmbeddedServer, rec: Recorder) -> None:
    with Raw(srv) as c:
        to_dead(c, "dead-old-001", custom={"x": 1})
        # A scheduled job's queue is checked when it comes due: an unusable name drops it.
        c.push("bad-queue-01", at=LATER, queue="no such queue", custom={"x": 1})
        srv.advance(3600)
        assert seen(srv, rec) == [("bad-queue-01", DELETED)]
        srv.advance(DEAD_TTL)
        assert seen(srv, rec)[1:] == [("dead-old-001", DELETED)]
        assert srv.info()["dead"] == 0

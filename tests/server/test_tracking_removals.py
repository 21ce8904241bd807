"""Track records of jobs the operator moves or erases (docs/enterprise.md 4.4): MUTATE kill
reads ``dead``, requeue reads ``enqueued``, and a job erased from the server (MUTATE
discard or clear, QUEUE REMOVE, the web UI's deletes, a due job with an unusable queue)
loses its record and reads ``unknown``; on the manual clock, and across a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.server.batchkit import dumps, fail, mutate, take, web
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock
from werk.server._features import tracking_of
from werk.server._tracking import RETENTION
from werk.web._server_backend import ServerBackend

T0 = MANUAL_EPOCH
LATER = epoch_to_string(T0 + 3600)
TRACK = {"track": 1}


def state(c: Raw, jid: str) -> str:
    reply = c.cmd(f"TRACK GET {jid}")
    assert isinstance(reply, bytes), reply
    return str(json.loads(reply)["state"])


def to_retries(c: Raw, jid: str, **fields: Any) -> None:
    c.push(jid, custom=TRACK, **fields)
    fail(c, take(c)["jid"])


def records(srv: EmbeddedServer) -> set[str]:
    ext = tracking_of(srv.manager)
    assert ext is not None
    return srv.call(lambda: set(ext.tracks))


def test_mutate_kill_reads_dead_and_expires_like_a_death(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        c.push("sched-killed", at=LATER, custom=TRACK)
        to_retries(c, "retry-killed")
        assert (state(c, "sched-killed"), state(c, "retry-killed")) == ("enqueued", "failed")
        mutate(c, "kill", "scheduled")
        mutate(c, "kill", "retries", jids=["retry-killed"])
        assert (state(c, "sched-killed"), state(c, "retry-killed")) == ("dead", "dead")
        # A final state: the record goes 30 minutes later, as a job that died by FAIL.
        clock_server.advance(RETENTION)
        assert records(clock_server) == set()


def test_mutate_requeue_reads_enqueued_again(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        to_retries(c, "requeued-001", retry=-1)  # straight to the dead set
        assert state(c, "requeued-001") == "dead"
        mutate(c, "requeue", "dead")
        assert state(c, "requeued-001") == "enqueued"
        # No longer final: it outlives the retention of a finished job.
        clock_server.advance(2 * RETENTION)
        assert state(c, "requeued-001") == "enqueued"
        assert take(c)["jid"] == "requeued-001"
        assert state(c, "requeued-001") == "working"


@pytest.mark.parametrize(
    ("cmd", "target", "flt"),
    [
        ("discard", "retries", {"jids": ["erased-0001"]}),
        ("discard", "retries", {}),
        ("clear", "retries", {}),
        ("discard", "scheduled", {"jobtype": "T"}),
        ("clear", "dead", {}),
    ],
)
def test_a_job_erased_by_mutate_reads_unknown(
    clock_server: EmbeddedServer, cmd: str, target: str, flt: dict[str, Any]
) -> None:
    with Raw(clock_server) as c:
        if target == "retries":
            to_retries(c, "erased-0001")
        elif target == "dead":
            to_retries(c, "erased-0001", retry=-1)
        else:
            c.push("erased-0001", at=LATER, custom=TRACK)
        mutate(c, cmd, target, **flt)
        assert state(c, "erased-0001") == "unknown"
        assert records(clock_server) == set()


def test_queue_remove_and_web_deletes_drop_the_records(clock_server: EmbeddedServer) -> None:
    backend = ServerBackend(clock_server.server)
    with Raw(clock_server) as c:
        c.push("queued-00001", queue="q1", custom=TRACK)
        c.push("queued-00002", queue="q1", custom=TRACK)
        c.push("queued-00003", queue="q2", custom=TRACK)
        c.push("untracked-01", queue="q2", custom={"x": 1})
        assert c.cmd(dumps({"jid": "untracked-01", "percent": 5}).join(["TRACK SET ", ""]))
        assert web(clock_server, backend.delete_queue_jobs("q1", ["queued-00001"])) == 1
        assert state(c, "queued-00001") == "unknown"
        assert state(c, "queued-00002") == "enqueued"
        assert c.cmd("QUEUE REMOVE q1") == "OK"
        web(clock_server, backend.remove_queues(["q2"]))
        assert records(clock_server) == set()  # the SET-only record of a gone job too


def test_a_due_job_dropped_for_its_queue_name_reads_unknown(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        c.push("badqueue-001", at=LATER, queue="no such queue", custom=TRACK)
        assert state(c, "badqueue-001") == "enqueued"
        clock_server.advance(3600)
        assert clock_server.info()["scheduled"] == 0
        assert state(c, "badqueue-001") == "unknown"


def test_the_states_survive_a_restart(make_server: ServerFactory, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        c.push("r-killed-001", at=LATER, custom=TRACK)
        c.push("r-erased-001", queue="gone", custom=TRACK)
        to_retries(c, "r-requeued01", retry=-1)
        mutate(c, "kill", "scheduled")
        assert c.cmd("QUEUE REMOVE gone") == "OK"
        mutate(c, "requeue", "dead", jids=["r-requeued01"])
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert state(c, "r-killed-001") == "dead"
        assert state(c, "r-erased-001") == "unknown"
        assert state(c, "r-requeued01") == "enqueued"
        assert records(srv) == {"r-killed-001", "r-requeued01"}
        srv.advance(RETENTION)  # the killed job's record expires, from the stored time
        assert records(srv) == {"r-requeued01"}

"""Unique locks of jobs the operator removes (docs/enterprise.md 5.3): as in Enterprise,
where removing a job from the retry set by hand does not release its lock, no removal
does (MUTATE kill, discard, clear, QUEUE REMOVE, the web UI's deletes): the lock ends at
``unique_for``, or at the ACK of the holder should it be requeued. Durable across a
restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.server.batchkit import ack, fail, mutate, take, web
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.resp import ErrorReply
from werk.server import EmbeddedServer, ManualClock
from werk.web._server_backend import ServerBackend

NOT_UNIQUE = ErrorReply("NOTUNIQUE", "Job not unique")
UNIQUE = {"unique_for": 600}


def duplicate(c: Raw, jid: str, queue: str = "default") -> Any:
    return c.push(jid, args=[7], queue=queue, custom=UNIQUE)


@pytest.mark.parametrize(
    ("cmd", "target"), [("discard", "retries"), ("clear", "retries"), ("kill", "retries")]
)
def test_a_job_removed_from_the_retry_set_keeps_its_lock(
    clock_server: EmbeddedServer, cmd: str, target: str
) -> None:
    with Raw(clock_server) as c:
        assert duplicate(c, "holder-00001") == "OK"
        fail(c, take(c)["jid"])
        mutate(c, cmd, target)
        assert duplicate(c, "duplicate-01") == NOT_UNIQUE
        clock_server.advance(600)  # unique_for is over
        assert duplicate(c, "duplicate-02") == "OK"


def test_queue_remove_and_web_deletes_keep_the_lock(clock_server: EmbeddedServer) -> None:
    backend = ServerBackend(clock_server.server)
    with Raw(clock_server) as c:
        assert duplicate(c, "holder-q1-01", "q1") == "OK"
        assert duplicate(c, "holder-q2-01", "q2") == "OK"
        assert c.cmd("QUEUE REMOVE q1") == "OK"
        assert web(clock_server, backend.delete_queue_jobs("q2", ["holder-q2-01"])) == 1
        assert duplicate(c, "duplicate-q1", "q1") == NOT_UNIQUE
        assert duplicate(c, "duplicate-q2", "q2") == NOT_UNIQUE


def test_a_requeued_holder_releases_at_its_ack(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        assert c.push("holder-dead1", args=[7], retry=-1, custom=UNIQUE) == "OK"
        fail(c, take(c)["jid"])
        mutate(c, "requeue", "dead")
        assert duplicate(c, "duplicate-01") == NOT_UNIQUE
        ack(c, take(c)["jid"])
        assert duplicate(c, "duplicate-02") == "OK"


def test_the_kept_lock_survives_a_restart(make_server: ServerFactory, tmp_path: Path) -> None:
    clock = ManualClock(MANUAL_EPOCH)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert duplicate(c, "holder-00001", "gone") == "OK"
        assert c.cmd("QUEUE REMOVE gone") == "OK"
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert duplicate(c, "duplicate-01", "gone") == NOT_UNIQUE
        srv.advance(600)
        assert duplicate(c, "duplicate-02", "gone") == "OK"

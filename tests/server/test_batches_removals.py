"""Batch members the operator kills or erases (docs/enterprise.md 3.6): each counts as a
failure once (it will never succeed), so the complete callback can fire and the success
callback waits; a requeued member is pending still; a callback's state does not move.
Durable with SQLite across a restart and ``kill -9``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.server.batchkit import (
    ack,
    callback,
    dumps,
    fail,
    mutate,
    new_batch,
    progress,
    push_members,
    take,
    web,
)
from tests.server.rawclient import Raw
from tests.server.serverproc import ServerProcess
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock
from werk.server._features import batches_of
from werk.web._server_backend import ServerBackend

LATER = epoch_to_string(MANUAL_EPOCH + 3600)


def both() -> dict[str, Any]:
    return {"complete": callback("Complete"), "success": callback("Success")}


def push_scheduled(c: Raw, bid: str, jid: str) -> None:
    assert c.push(jid, at=LATER, custom={"bid": bid}) == "OK"


def failed_members(srv: EmbeddedServer, bid: str) -> list[str]:
    ext = batches_of(srv.manager)
    assert ext is not None
    return srv.call(ext.failed_members, bid)


def test_a_killed_member_counts_as_failed_and_completes_the_batch(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, **both())
        push_members(c, bid, ["member-0001", "member-0002"])
        push_scheduled(c, bid, "member-sched")
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        ack(c, take(c)["jid"])
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (3, 1, 0, "", "")
        mutate(c, "kill", "scheduled")
        # It never ran and never will unless requeued: a failure, so every member has
        # "run once" and complete fires; success waits.
        assert progress(c, bid) == (3, 1, 1, "1", "")
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, bid) == (3, 1, 1, "2", "")
        # Killing it again within the dead set counts nothing more.
        mutate(c, "kill", "dead")
        assert progress(c, bid) == (3, 1, 1, "2", "")
        # Requeued from the dead set it is pending still; its ACK is the success.
        mutate(c, "requeue", "dead")
        assert progress(c, bid) == (3, 1, 1, "2", "")
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (3, 0, 0, "2", "1")


def test_a_failed_member_erased_from_retries_is_counted_once(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, **both())
        push_members(c, bid, ["member-fail1", "member-ok-01"])
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        fail(c, take(c)["jid"])
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (2, 1, 1, "1", "")
        mutate(c, "kill", "retries")
        mutate(c, "discard", "dead")
        assert progress(c, bid) == (2, 1, 1, "1", "")
        assert failed_members(clock_server, bid) == ["member-fail1"]


def test_queue_remove_and_web_deletes_count_each_member_failed(
    clock_server: EmbeddedServer,
) -> None:
    backend = ServerBackend(clock_server.server)
    with Raw(clock_server) as c:
        bid = new_batch(c, **both())
        push_members(c, bid, ["q1-member-01", "q1-member-02"], queue="q1")
        push_members(c, bid, ["q2-member-01", "q2-member-02"], queue="q2")
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        assert web(clock_server, backend.delete_queue_jobs("q2", ["q2-member-01"])) == 1
        assert progress(c, bid) == (4, 4, 1, "", "")
        assert c.cmd("QUEUE REMOVE q1") == "OK"
        assert progress(c, bid) == (4, 4, 3, "", "")
        ack(c, take(c, "q2")["jid"])
        assert progress(c, bid) == (4, 3, 3, "1", "")
        assert failed_members(clock_server, bid) == ["q1-member-01", "q1-member-02", "q2-member-01"]


def test_erasing_a_callback_leaves_its_state(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, **both())
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"  # empty: complete fires at once
        assert progress(c, bid) == (0, 0, 0, "1", "")
        assert c.cmd("QUEUE REMOVE callbacks") == "OK"
        assert progress(c, bid) == (0, 0, 0, "1", "")


def test_the_counts_survive_a_restart(make_server: ServerFactory, tmp_path: Path) -> None:
    clock = ManualClock(MANUAL_EPOCH)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        bid = new_batch(c, **both())
        push_members(c, bid, ["member-queue"], queue="gone")
        push_scheduled(c, bid, "member-sched")
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        mutate(c, "kill", "scheduled")
        assert c.cmd("QUEUE REMOVE gone") == "OK"
        assert progress(c, bid) == (2, 2, 2, "1", "")
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert progress(c, bid) == (2, 2, 2, "1", "")
        assert failed_members(srv, bid) == ["member-queue", "member-sched"]
        ack(c, take(c, "callbacks")["jid"])
        mutate(c, "requeue", "dead")
        ack(c, take(c)["jid"])  # the failed member set came back: its ACK clears it
        assert progress(c, bid) == (2, 1, 1, "2", "")


def test_a_removal_is_durable_once_answered(tmp_path: Path) -> None:
    """The reply to QUEUE REMOVE or MUTATE is written after its commit, the counts and
    track records with it: a ``kill -9`` right after it loses neither."""
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        bid = new_batch(c, **both())
        custom = {"bid": bid, "track": 1}
        jobs = [
            {
                "jid": f"member-{i:04d}",
                "jobtype": "M",
                "args": [],
                "queue": "doomed",
                "custom": custom,
            }
            for i in range(3)
        ]
        assert c.cmd("PUSHB " + dumps(jobs)) == b"{}"
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        assert c.cmd("QUEUE REMOVE doomed") == "OK"
        proc.kill9()
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        assert progress(c, bid) == (3, 3, 3, "1", "")
        assert c.cmd("TRACK GET member-0000") == (
            b'{"jid":"member-0000","state":"unknown","updated_at":""}'
        )
        assert c.info()["faktory"]["queues"].get("doomed", 0) == 0

"""How long batches live (docs/enterprise.md 3.9), bounded periodic work, and FLUSH, on
the manual clock."""

from __future__ import annotations

from pathlib import Path

from tests.server.batchkit import (
    ack,
    callback,
    new_batch,
    progress,
    push_members,
    queue_jobs,
    take,
)
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.resp import ErrorReply
from werk.server import EmbeddedServer, ManualClock
from werk.server._batches import COMMITTED_TTL, TICK_SLICE, UNCOMMITTED_TTL, Batches
from werk.server._features import batches_of, tracking_of


def batches(srv: EmbeddedServer) -> Batches:
    ext = batches_of(srv.manager)
    assert ext is not None
    return ext


def test_an_uncommitted_batch_expires_thirty_minutes_after_new(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        push_members(c, bid, ["member-0001", "member-0002"])
        clock_server.advance(UNCOMMITTED_TTL - 60)
        assert c.cmd(f"BATCH OPEN {bid}") == bid.encode()  # does not extend it
        clock_server.advance(59)
        assert progress(c, bid) == (2, 2, 0, "", "")
        clock_server.advance(1)
        gone = ErrorReply("ERR", f"no such batch {bid}")
        for sub in ("STATUS", "OPEN", "COMMIT"):
            assert c.cmd(f"BATCH {sub} {bid}") == gone
        assert c.push("member-0003", custom={"bid": bid}) == gone
        # Its members keep running; their ACKs count nowhere and fire nothing.
        ack(c, take(c)["jid"])
        ack(c, take(c)["jid"])
        assert queue_jobs(clock_server, "callbacks") == []
    assert clock_server.call(batches(clock_server).count) == 0


def test_an_expired_uncommitted_child_no_longer_holds_its_parent(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        parent = new_batch(c, success=callback("PSuccess"))
        child = new_batch(c, parent_bid=parent, success=callback("CSuccess"))
        c.cmd(f"BATCH COMMIT {parent}")
        assert progress(c, parent)[4] == ""
        clock_server.advance(UNCOMMITTED_TTL)
        assert c.cmd(f"BATCH STATUS {child}") == ErrorReply("ERR", f"no such batch {child}")
        assert progress(c, parent)[4] == "1"
        assert [j["jobtype"] for j in queue_jobs(clock_server, "callbacks")] == ["PSuccess"]
    assert clock_server.call(batches(clock_server).children, parent) == []


def test_a_committed_batch_is_kept_thirty_days_after_its_last_change(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, success=callback("Success"))
        push_members(c, bid, ["member-0001", "member-0002"])
        c.cmd(f"BATCH COMMIT {bid}")
        clock_server.advance(COMMITTED_TTL - 10)
        ack(c, take(c)["jid"])  # a member event: the thirty days start again
        clock_server.advance(COMMITTED_TTL - 10)
        assert progress(c, bid) == (2, 1, 0, "", "")
        clock_server.advance(10)
        assert c.cmd(f"BATCH STATUS {bid}") == ErrorReply("ERR", f"no such batch {bid}")


def test_a_child_is_deleted_only_after_its_parent(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        parent = new_batch(c, success=callback("PSuccess"))
        push_members(c, parent, ["parent-m-01"])
        c.cmd(f"BATCH COMMIT {parent}")
        clock_server.advance(3600)
        child = new_batch(c, parent_bid=parent, success=callback("CSuccess"))
        push_members(c, child, ["child-m-001"])
        c.cmd(f"BATCH COMMIT {child}")
        clock_server.advance(3600)
        ack(c, take(c)["jid"])  # the parent's member, later than the child's last change
        clock_server.advance(COMMITTED_TTL - 1800)
        # The child is past its thirty days but its parent still waits for it.
        assert progress(c, child) == (1, 1, 0, "", "")
        assert progress(c, parent) == (1, 0, 0, "", "")
        clock_server.advance(7200)
        for bid in (parent, child):
            assert c.cmd(f"BATCH STATUS {bid}") == ErrorReply("ERR", f"no such batch {bid}")
        assert queue_jobs(clock_server, "callbacks") == []


def test_expiry_works_a_slice_at_a_time(clock_server: EmbeddedServer) -> None:
    ext = batches(clock_server)
    with Raw(clock_server) as c:
        for _ in range(TICK_SLICE + 100):
            new_batch(c, success=callback("Success"))
    now = MANUAL_EPOCH + UNCOMMITTED_TTL
    assert clock_server.call(ext.tick, now) is True  # more to do
    assert clock_server.call(ext.count) == 100
    assert clock_server.call(ext.tick, now) is False
    assert clock_server.call(ext.count) == 0


def test_flush_drops_batches_and_tracks(make_server: ServerFactory, tmp_path: Path) -> None:
    clock = ManualClock(MANUAL_EPOCH)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        bid = new_batch(c, success=callback("Success"))
        push_members(c, bid, ["member-0001"])
        c.push("tracked-flush", custom={"track": 1})
        assert c.cmd("FLUSH") == "OK"
        assert c.cmd(f"BATCH STATUS {bid}") == ErrorReply("ERR", f"no such batch {bid}")
        assert c.cmd("TRACK GET tracked-flush") == (
            b'{"jid":"tracked-flush","state":"unknown","updated_at":""}'
        )
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:  # the records went too
        assert c.cmd(f"BATCH STATUS {bid}") == ErrorReply("ERR", f"no such batch {bid}")
        assert c.cmd("TRACK GET tracked-flush") == (
            b'{"jid":"tracked-flush","state":"unknown","updated_at":""}'
        )
    tracking = tracking_of(srv.manager)
    assert tracking is not None and srv.call(lambda: len(tracking.tracks)) == 0


def test_expired_batches_stay_gone_after_a_restart(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    clock = ManualClock(MANUAL_EPOCH)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        old = new_batch(c, success=callback("Success"))
        kept = new_batch(c, success=callback("Success"))
        c.cmd(f"BATCH COMMIT {kept}")
        srv.advance(UNCOMMITTED_TTL)
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert c.cmd(f"BATCH STATUS {old}") == ErrorReply("ERR", f"no such batch {old}")
        assert progress(c, kept) == (0, 0, 0, "", "1")

"""Batches and tracks survive restarts and ``kill -9`` (SQLite storage): membership,
counters, the failed members, children and callback states come back as they were
acknowledged, and no callback is ever pushed twice, wherever the kill lands."""

from __future__ import annotations

from pathlib import Path

from tests.server.batchkit import (
    ack,
    callback,
    dumps,
    fail,
    new_batch,
    progress,
    push_members,
    status,
    take,
)
from tests.server.rawclient import Raw
from tests.server.serverproc import ServerProcess
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk.server import ManualClock


def ack_burst_then_kill(proc: ServerProcess, jids: list[str]) -> None:
    """Send every ACK in one write and kill the server while it works through them: some
    are committed, the rest never were (no reply was read)."""
    with Raw("127.0.0.1", proc.port) as c:
        c.send(b"".join(b"ACK " + dumps({"jid": j}).encode() + b"\r\n" for j in jids))
        proc.kill9()


def callbacks_waiting(c: Raw) -> list[str]:
    """The ``_cb`` of every callback job in the queue ``callbacks`` (taken, not ACKed)."""
    found = []
    while c.info()["faktory"]["queues"].get("callbacks"):
        found.append(take(c, "callbacks")["custom"]["_cb"])
    return found


def test_kill_9_mid_batch_loses_nothing_and_fires_once(tmp_path: Path) -> None:
    jids = [f"member-{i:04d}" for i in range(300)]
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        child = new_batch(c, parent_bid=bid, success=callback("ChildSuccess"))
        push_members(c, bid, jids)
        push_members(c, child, ["child-m-0001"], queue="child")
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        assert c.cmd(f"BATCH COMMIT {child}") == "OK"
        for _ in range(300):
            take(c)  # every member reserved: the reservations are stored too
        fail(c, "member-0007")  # goes to the retry set, counted failed
        ack(c, "member-0000")
        assert progress(c, bid) == (300, 299, 1, "", "")
        proc.kill9()
    # Kill while bursts of ACKs are being committed, restarting each time.
    remaining = [j for j in jids if j not in ("member-0000", "member-0007")]
    for start in range(0, len(remaining), 100):
        with ServerProcess(tmp_path) as proc:
            ack_burst_then_kill(proc, remaining[start : start + 100])
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        # What the kills cut off is ACKed again; a committed ACK ended its reservation,
        # so a second one does nothing: nothing is counted twice.
        for jid in remaining:
            ack(c, jid)
        assert progress(c, bid) == (300, 1, 1, "", "")
        assert status(c, child)["parent_bid"] == bid
        ack(c, take(c, "child")["jid"])
        # The child has no complete callback: it is complete-finished once its member
        # ran, so the parent's complete fires; its success waits for the child's.
        assert progress(c, child) == (1, 0, 0, "", "1")
        assert progress(c, bid) == (300, 1, 1, "1", "")
        child_cb, complete = take(c, "callbacks"), take(c, "callbacks")
        assert child_cb["custom"] == {"_bid": child, "_cb": "success", "_pbid": bid}
        assert complete["custom"] == {"_bid": bid, "_cb": "complete"}
        assert callbacks_waiting(c) == []
        ack_burst_then_kill(proc, [child_cb["jid"], complete["jid"]])
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        ack(c, child_cb["jid"])
        ack(c, complete["jid"])
        assert progress(c, child)[4] == "2"
        assert progress(c, bid) == (300, 1, 1, "2", "")
        assert callbacks_waiting(c) == []
        mutate = {"cmd": "requeue", "target": "retries", "filter": {"regexp": "*"}}
        assert c.cmd("MUTATE " + dumps(mutate)) == "OK"
        retried = take(c)
        assert retried["jid"] == "member-0007"
        ack_burst_then_kill(proc, [retried["jid"]])
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        ack(c, "member-0007")
        assert progress(c, bid) == (300, 0, 0, "2", "1")
        success = take(c, "callbacks")
        assert success["custom"] == {"_bid": bid, "_cb": "success"}
        assert callbacks_waiting(c) == []
        ack_burst_then_kill(proc, [success["jid"]])
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        ack(c, success["jid"])
        assert progress(c, bid) == (300, 0, 0, "2", "2")
        assert progress(c, child) == (1, 0, 0, "", "2")
        faktory = c.info()["faktory"]
        assert faktory["queues"].get("callbacks", 0) == 0
        assert faktory["sets"]["working"] == 0


def test_a_kill_as_the_last_ack_fires_the_callback_keeps_both_or_neither(
    tmp_path: Path,
) -> None:
    """The last member's ACK, the counter records and the callback's push are one commit:
    after the kill either the batch shows it fired and its callback is queued, or
    neither, never one without the other."""
    for trial in range(3):
        data = tmp_path / str(trial)
        data.mkdir()
        jids = [f"member-{i:04d}" for i in range(60)]
        with ServerProcess(data) as proc, Raw("127.0.0.1", proc.port) as c:
            bid = new_batch(c, complete=callback("Complete"))
            push_members(c, bid, jids)
            assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
            for _ in jids:
                take(c)
            ack_burst_then_kill(proc, jids)
        with ServerProcess(data) as proc, Raw("127.0.0.1", proc.port) as c:
            total, pending, failed, complete_st, _ = progress(c, bid)
            fired = c.info()["faktory"]["queues"].get("callbacks", 0)
            assert (total, failed) == (60, 0)
            assert (complete_st, fired) == (("1", 1) if pending == 0 else ("", 0))
            for jid in jids:
                ack(c, jid)
            assert progress(c, bid) == (60, 0, 0, "1", "")
            assert callbacks_waiting(c) == ["complete"]


def test_a_restart_restores_every_batch_and_track(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    clock = ManualClock(MANUAL_EPOCH)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        top = new_batch(c, description="top", complete=callback("C"), success=callback("S"))
        mid = new_batch(c, parent_bid=top, success=callback("MidS"))
        low = new_batch(c, parent_bid=mid, complete=callback("LowC"))
        open_one = new_batch(c, success=callback("Never"))
        push_members(c, top, ["top-member-1", "top-member-2"])
        push_members(c, low, ["low-member-1"], queue="low")
        for bid in (low, mid, top):
            c.cmd(f"BATCH COMMIT {bid}")
        fail(c, take(c)["jid"])
        ack(c, take(c)["jid"])
        c.push("tracked-restart", queue="t", custom={"track": 1})
        c.cmd('TRACK SET {"jid":"tracked-restart","percent":30,"desc":"a third"}')
        before = {b: c.cmd(f"BATCH STATUS {b}") for b in (top, mid, low, open_one)}
        track_before = c.cmd("TRACK GET tracked-restart")
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert {b: c.cmd(f"BATCH STATUS {b}") for b in before} == before
        assert c.cmd("TRACK GET tracked-restart") == track_before
        # The nesting came back: the low batch's callback finishes it; the middle one
        # (no complete callback) is then complete-finished, so the top's complete fires.
        ack(c, take(c, "low")["jid"])
        low_cb = take(c, "callbacks")
        assert low_cb["custom"] == {"_bid": low, "_cb": "complete", "_pbid": mid}
        assert progress(c, top)[3] == ""
        ack(c, low_cb["jid"])
        mid_cb, top_cb = take(c, "callbacks"), take(c, "callbacks")
        assert mid_cb["custom"] == {"_bid": mid, "_cb": "success", "_pbid": top}
        assert top_cb["custom"] == {"_bid": top, "_cb": "complete"}
        assert progress(c, top) == (2, 1, 1, "1", "")  # its failed member was restored
        ack(c, mid_cb["jid"])
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        ack(c, top_cb["jid"])  # reserved before the restart
        assert progress(c, top) == (2, 1, 1, "2", "")
        srv.advance(3600)
        retried = take(c)
        assert retried["jid"] in ("top-member-1", "top-member-2")
        ack(c, retried["jid"])
        assert progress(c, top) == (2, 0, 0, "2", "1")
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, top) == (2, 0, 0, "2", "2")


def test_deep_nesting_comes_back_after_a_restart(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    clock = ManualClock(MANUAL_EPOCH)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    depth = 100
    with Raw(srv) as c:
        bids = [new_batch(c, success=callback("Level", args=[0]))]
        for level in range(1, depth):
            bids.append(new_batch(c, parent_bid=bids[-1], success=callback("Level", args=[level])))
        push_members(c, bids[-1], ["deepest-m-1"])
        for bid in bids:
            c.cmd(f"BATCH COMMIT {bid}")
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        ack(c, take(c)["jid"])
        for level in reversed(range(depth)):
            job = take(c, "callbacks")
            assert job["args"] == [level]
            assert c.info()["faktory"]["queues"]["callbacks"] == 0  # one level at a time
            ack(c, job["jid"])
        assert all(progress(c, bid)[4] == "2" for bid in bids)


def test_after_a_restart_a_parent_still_waits_for_its_grandchildren(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """What a batch waits for is rebuilt from the bottom up: the middle batch is not
    finished while the lowest one has a member running."""
    clock = ManualClock(MANUAL_EPOCH)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        top = new_batch(c, complete=callback("TopComplete"))
        srv.advance(1)  # loaded oldest first: the parents before their children
        mid = new_batch(c, parent_bid=top, success=callback("MidSuccess"))
        srv.advance(1)
        low = new_batch(c, parent_bid=mid, success=callback("LowSuccess"))
        push_members(c, low, ["low-member-1"])
        for bid in (low, mid, top):
            c.cmd(f"BATCH COMMIT {bid}")
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert c.cmd(f"BATCH COMMIT {top}") == "OK"  # evaluates the top batch again
        assert progress(c, top)[3] == ""
        ack(c, take(c)["jid"])
        assert progress(c, top)[3] == "1"  # mid and low have no complete callback
        assert take(c, "callbacks")["jobtype"] == "LowSuccess"

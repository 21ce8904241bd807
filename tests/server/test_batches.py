"""Batches on the wire (docs/enterprise.md section 3): NEW, member pushes, COMMIT, OPEN,
STATUS, the counters and when each callback is enqueued, against the embedded server
with a manual clock."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.server.batchkit import (
    ack,
    callback,
    dumps,
    fail,
    new_batch,
    progress,
    push_members,
    queue_jobs,
    status,
    take,
)
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.resp import ErrorReply
from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock


def test_new_answers_a_bulk_bid_and_status_shows_the_empty_batch(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        c.send(b'BATCH NEW {"description":"Import","success":{"jobtype":"Done"}}\r\n')
        line = c.sock.recv(100)
        assert re.fullmatch(rb"\$16\r\nb-[A-Za-z0-9_-]{14}\r\n", line), line
        bid = line[5:-2].decode()
        raw = c.cmd(f"BATCH STATUS {bid}")
        expected = {
            "bid": bid,
            "description": "Import",
            "created_at": epoch_to_string(MANUAL_EPOCH),
            "complete_st": "",
            "success_st": "",
            "total": 0,
            "pending": 0,
            "failed": 0,
        }
        assert raw == dumps(expected).encode()  # this key order, no parent_bid
        assert c.cmd(f"BATCH OPEN {bid}") == bid.encode()  # a bulk string too
        assert c.cmd(f"BATCH status {bid}") == raw  # the sub-command in any case


def test_the_worked_example_of_the_docs(clock_server: EmbeddedServer) -> None:
    """docs/enterprise.md 3.10: three members, m3 fails once, both callbacks."""
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        push_members(c, bid, ["member-0001", "member-0002", "member-0003"])
        assert progress(c, bid) == (3, 3, 0, "", "")
        for jid in ("member-0001", "member-0002"):
            assert take(c)["jid"] == jid
            ack(c, jid)
        assert progress(c, bid) == (3, 1, 0, "", "")
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        assert progress(c, bid) == (3, 1, 0, "", "")
        assert queue_jobs(clock_server, "callbacks") == []
        m3 = take(c)
        assert m3["jid"] == "member-0003" and m3["custom"] == {"bid": bid}
        fail(c, "member-0003")
        assert progress(c, bid) == (3, 1, 1, "1", "")
        complete = take(c, "callbacks")
        assert complete["jobtype"] == "Complete"
        assert complete["custom"] == {"_bid": bid, "_cb": "complete"}
        ack(c, complete["jid"])
        assert progress(c, bid) == (3, 1, 1, "2", "")
        assert queue_jobs(clock_server, "callbacks") == []
        clock_server.advance(3600)  # the retry comes due
        assert take(c)["jid"] == "member-0003"
        ack(c, "member-0003")
        assert progress(c, bid) == (3, 0, 0, "2", "1")
        success = take(c, "callbacks")
        assert success["custom"] == {"_bid": bid, "_cb": "success"}
        ack(c, success["jid"])
        assert progress(c, bid) == (3, 0, 0, "2", "2")
        assert queue_jobs(clock_server, "callbacks") == []


def test_a_thousand_members_one_failing_twice(clock_server: EmbeddedServer) -> None:
    """Complete fires after the first failure, success only once the retry succeeded,
    in that order, each exactly once."""
    jids = [f"member-{i:05d}" for i in range(1000)]
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        push_members(c, bid, jids)
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        fired: list[str] = []
        for n in range(1000):
            job = take(c)
            if job["jid"] == "member-00500":
                fail(c, job["jid"])
            else:
                ack(c, job["jid"])
            if n % 100 == 0 or n == 998:  # nothing before the last member ran
                assert queue_jobs(clock_server, "callbacks") == []
        assert progress(c, bid) == (1000, 1, 1, "1", "")
        complete = take(c, "callbacks")
        fired.append(complete["custom"]["_cb"])
        ack(c, complete["jid"])
        for attempt in range(2):
            clock_server.advance(3600)
            job = take(c)
            assert job["jid"] == "member-00500"
            if attempt == 0:
                fail(c, job["jid"])  # its second failure: counted once
                assert progress(c, bid) == (1000, 1, 1, "2", "")
                assert queue_jobs(clock_server, "callbacks") == []
            else:
                ack(c, job["jid"])
        assert progress(c, bid) == (1000, 0, 0, "2", "1")
        success = take(c, "callbacks")
        fired.append(success["custom"]["_cb"])
        ack(c, success["jid"])
        assert progress(c, bid) == (1000, 0, 0, "2", "2")
        assert fired == ["complete", "success"]
        assert queue_jobs(clock_server, "callbacks") == []


def test_callbacks_never_fire_before_commit(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        push_members(c, bid, ["member-0001"])
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (1, 0, 0, "", "")
        assert queue_jobs(clock_server, "callbacks") == []
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        assert progress(c, bid) == (1, 0, 0, "1", "")
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"  # again: nothing fires twice
        assert [j["jobtype"] for j in queue_jobs(clock_server, "callbacks")] == ["Complete"]


def test_an_empty_batch_fires_at_commit(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        assert progress(c, bid) == (0, 0, 0, "1", "")
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, bid) == (0, 0, 0, "2", "1")
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, bid) == (0, 0, 0, "2", "2")


def test_only_a_success_callback_fires_when_all_succeeded(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, success=callback("Success", jid="success-cb-1"))
        push_members(c, bid, ["member-0001"])
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        fail(c, take(c)["jid"])
        assert progress(c, bid) == (1, 1, 1, "", "")
        clock_server.advance(3600)
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (1, 0, 0, "", "1")
        job = take(c, "callbacks")
        assert job["jid"] == "success-cb-1"  # the given jid is kept
        ack(c, job["jid"])
        assert progress(c, bid) == (1, 0, 0, "", "2")


def test_only_a_complete_callback_leaves_success_blank(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"))
        push_members(c, bid, ["member-0001"])
        c.cmd(f"BATCH COMMIT {bid}")
        ack(c, take(c)["jid"])
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, bid) == (1, 0, 0, "2", "")


def test_a_dead_member_completes_but_never_succeeds(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        c.push("member-dies", retry=0, custom={"bid": bid})
        c.cmd(f"BATCH COMMIT {bid}")
        fail(c, take(c)["jid"])  # retry 0: discarded, still pending and failed
        assert progress(c, bid) == (1, 1, 1, "1", "")
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, bid) == (1, 1, 1, "2", "")
        assert queue_jobs(clock_server, "callbacks") == []


def test_a_scheduled_member_counts_at_push(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, success=callback("Success"))
        at = epoch_to_string(MANUAL_EPOCH + 60)
        assert c.push("member-later", at=at, custom={"bid": bid}) == "OK"
        c.cmd(f"BATCH COMMIT {bid}")
        assert progress(c, bid) == (1, 1, 0, "", "")
        clock_server.advance(120)
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (1, 0, 0, "", "1")


def test_reopen_and_add(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        push_members(c, bid, ["member-0001"])
        c.cmd(f"BATCH COMMIT {bid}")
        job = take(c)
        # Inside the member: reopen, add two, commit; the running member holds the batch.
        assert c.cmd(f"BATCH OPEN {bid}") == bid.encode()
        push_members(c, bid, ["member-0002", "member-0003"])
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"
        ack(c, job["jid"])
        assert progress(c, bid) == (3, 2, 0, "", "")
        ack(c, take(c)["jid"])
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (3, 0, 0, "1", "")
        ack(c, take(c, "callbacks")["jid"])
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, bid) == (3, 0, 0, "2", "2")
        # Reopened after both fired: counted, nothing fires again.
        assert c.cmd(f"BATCH OPEN {bid}") == bid.encode()
        push_members(c, bid, ["member-0004"])
        c.cmd(f"BATCH COMMIT {bid}")
        assert progress(c, bid) == (4, 1, 0, "2", "2")
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (4, 0, 0, "2", "2")
        assert queue_jobs(clock_server, "callbacks") == []


def test_a_success_not_yet_fired_waits_for_added_members(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        push_members(c, bid, ["member-0001"])
        c.cmd(f"BATCH COMMIT {bid}")
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (1, 0, 0, "1", "")
        c.cmd(f"BATCH OPEN {bid}")
        push_members(c, bid, ["member-0002"])
        ack(c, take(c, "callbacks")["jid"])  # the complete callback succeeds
        assert progress(c, bid) == (2, 1, 0, "2", "")  # success waits for member-0002
        ack(c, take(c)["jid"])
        assert progress(c, bid) == (2, 0, 0, "2", "1")


def test_callback_jobs_keep_what_was_given(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        cb = {
            "jid": "given-jid-01",
            "jobtype": "Done",
            "args": [1, "two"],
            "queue": "callbacks",
            "retry": 3,
            "custom": {"tenant": "acme"},
        }
        bid = new_batch(c, description="kept", complete=cb)
        c.cmd(f"BATCH COMMIT {bid}")
        job = take(c, "callbacks")
        assert job["jid"] == "given-jid-01" and job["args"] == [1, "two"]
        assert job["retry"] == 3
        assert job["custom"] == {"tenant": "acme", "_bid": bid, "_cb": "complete"}
        assert job["created_at"] == job["enqueued_at"] == epoch_to_string(MANUAL_EPOCH)
        # Defaults: a fresh jid, [] args, the default queue.
        bid2 = new_batch(c, complete={"jobtype": "Bare"})
        c.cmd(f"BATCH COMMIT {bid2}")
        bare = take(c)
        assert bare["jobtype"] == "Bare" and bare["args"] == [] and bare["queue"] == "default"
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", bare["jid"]), bare["jid"]
        assert bare["retry"] == 25


def test_a_callback_that_fails_retries_and_stays_enqueued(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        c.cmd(f"BATCH COMMIT {bid}")
        fail(c, take(c, "callbacks")["jid"])
        assert progress(c, bid) == (0, 0, 0, "1", "")
        clock_server.advance(3600)
        job = take(c, "callbacks")
        assert job["custom"]["_cb"] == "complete"
        ack(c, job["jid"])
        assert progress(c, bid) == (0, 0, 0, "2", "1")


def test_a_fake_callback_ack_changes_nothing(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, complete=callback("Complete"), success=callback("Success"))
        push_members(c, bid, ["member-0001"])
        c.cmd(f"BATCH COMMIT {bid}")
        # A job that merely claims to be the callback does not move the state.
        c.push("imposter-01", custom={"_bid": bid, "_cb": "complete"})
        job = take(c)
        assert job["jid"] == "member-0001"
        ack(c, job["jid"])
        imposter = take(c)
        assert imposter["jid"] == "imposter-01"
        ack(c, imposter["jid"])
        assert progress(c, bid) == (1, 0, 0, "1", "")


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_both_storages_serve_batches(
    make_server: ServerFactory, storage: str, tmp_path: Path
) -> None:
    opts = {"data_dir": tmp_path} if storage == "sqlite" else {}
    srv = make_server(storage=storage, clock=ManualClock(MANUAL_EPOCH), **opts)
    with Raw(srv) as c:
        bid = new_batch(c, success=callback("Success"))
        push_members(c, bid, ["member-0001", "member-0002"])
        c.cmd(f"BATCH COMMIT {bid}")
        ack(c, take(c)["jid"])
        ack(c, take(c)["jid"])
        assert status(c, bid)["success_st"] == "1"
        assert json.loads(c.cmd("INFO"))["faktory"]["queues"]["callbacks"] == 1


def test_members_count_whatever_else_their_custom_holds(clock_server: EmbeddedServer) -> None:
    """The bid is found in any member's payload: first of its custom keys or not, with a
    failure before it or not, next to other keys that look like it."""
    with Raw(clock_server) as c:
        bid = new_batch(c, success=callback("Success"))
        customs: list[dict[str, Any]] = [
            {"bid": bid},
            {"bid": bid, "zz": {"bid": "b-not-this-one"}},
            {"A": 1, "_x": "bid", "bid": bid},
            {"_bid": "b-not-a-callback", "bid": bid},
        ]
        for i, custom in enumerate(customs):
            assert c.push(f"member-{i:04d}", custom=custom) == "OK"
        assert c.push("member-fails", custom={"Z": 1, "bid": bid}) == "OK"
        c.cmd(f"BATCH COMMIT {bid}")
        for _ in customs:
            ack(c, take(c)["jid"])
        assert progress(c, bid) == (5, 1, 0, "", "")
        fail(c, take(c)["jid"])
        clock_server.advance(3600)
        ack(c, take(c)["jid"])  # now with a failure in its payload
        assert progress(c, bid) == (5, 0, 0, "", "1")


def test_adding_after_the_callbacks_fired_warns_once(
    clock_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, success=callback("Success"))
        c.cmd(f"BATCH COMMIT {bid}")
        push_members(c, bid, [f"late-member-{i}" for i in range(3)])
        assert progress(c, bid) == (3, 3, 0, "", "1")
    warnings = [r.getMessage() for r in caplog.records if "after its callbacks" in r.getMessage()]
    assert warnings == [f"batch {bid}: job late-member-0 added after its callbacks fired"]


def test_a_callback_is_not_held_back_by_a_unique_lock(clock_server: EmbeddedServer) -> None:
    """A callback is the server's own push: its job's unique_for is not checked, even
    while an identical job holds the lock (docs/enterprise.md section 13)."""
    unique = {"unique_for": 600}
    with Raw(clock_server) as c:
        holder = {"jid": "holder-0001", "jobtype": "Done", "args": [], "queue": "callbacks"}
        assert c.cmd("PUSH " + dumps({**holder, "custom": unique})) == "OK"
        again = {**holder, "jid": "holder-0002", "custom": unique}
        assert c.cmd("PUSH " + dumps(again)) == ErrorReply("NOTUNIQUE", "Job not unique")
        bid = new_batch(c, success=callback("Done", custom=unique))
        assert c.cmd(f"BATCH COMMIT {bid}") == "OK"  # empty: the callback fires now
        jobs = queue_jobs(clock_server, "callbacks")
        assert jobs[0]["jid"] == "holder-0001"
        assert [job["custom"].get("_cb") for job in jobs] == [None, "success"]
        assert progress(c, bid)[3:] == ("", "1")

"""Child batches (docs/enterprise.md 3.8): a parent's callbacks wait until its children's
own callbacks finished, complete side for complete and success side for success, at any
depth; the read API the web UI builds on; and, on a manager driven directly, how batches
meet other extensions (a refused callback, a member discarded at FETCH)."""

from __future__ import annotations

from tests.server.batchkit import (
    ack,
    callback,
    fail,
    new_batch,
    progress,
    push_members,
    queue_jobs,
    status,
    take,
)
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH

from werk.server import EmbeddedServer, ManualClock
from werk.server._batches import Batches
from werk.server._extension import Extension
from werk.server._features import batches_of
from werk.server._manager import Manager
from werk.server._payload import Payload
from werk.server._storage import MemoryStorage
from werk.server._tracking import Tracking


def test_a_child_holds_its_parents_callbacks(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        parent = new_batch(c, complete=callback("PComplete"), success=callback("PSuccess"))
        push_members(c, parent, ["parent-m-01"])
        child = new_batch(
            c, parent_bid=parent, complete=callback("CComplete"), success=callback("CSuccess")
        )
        push_members(c, child, ["child-m-001"])
        c.cmd(f"BATCH COMMIT {child}")
        c.cmd(f"BATCH COMMIT {parent}")
        assert status(c, child)["parent_bid"] == parent
        assert "parent_bid" not in status(c, parent)
        ack(c, take(c)["jid"])  # the parent's member
        assert progress(c, parent) == (1, 0, 0, "", "")  # the child's total is not its own
        ack(c, take(c)["jid"])  # the child's member
        assert progress(c, child) == (1, 0, 0, "1", "")
        assert progress(c, parent) == (1, 0, 0, "", "")
        cc = take(c, "callbacks")
        assert cc["custom"] == {"_bid": child, "_cb": "complete", "_pbid": parent}
        ack(c, cc["jid"])  # the child is complete-finished: the parent's complete fires
        assert progress(c, child) == (1, 0, 0, "2", "1")
        assert progress(c, parent) == (1, 0, 0, "1", "")
        order = [take(c, "callbacks") for _ in range(2)]
        assert [j["jobtype"] for j in order] == ["CSuccess", "PComplete"]
        ack(c, order[1]["jid"])  # the parent's complete done; success waits for the child
        assert progress(c, parent) == (1, 0, 0, "2", "")
        ack(c, order[0]["jid"])
        assert progress(c, child) == (1, 0, 0, "2", "2")
        assert progress(c, parent) == (1, 0, 0, "2", "1")
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, parent) == (1, 0, 0, "2", "2")
        assert queue_jobs(clock_server, "callbacks") == []


def test_a_failed_child_member_completes_the_parent_but_never_succeeds_it(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        parent = new_batch(c, complete=callback("PComplete"), success=callback("PSuccess"))
        child = new_batch(c, parent_bid=parent, success=callback("CSuccess"))
        c.push("child-dies-1", retry=0, custom={"bid": child})
        c.cmd(f"BATCH COMMIT {child}")
        c.cmd(f"BATCH COMMIT {parent}")
        fail(c, take(c)["jid"])
        # The child has no complete callback: complete-finished once every member ran.
        assert progress(c, parent) == (0, 0, 0, "1", "")
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, parent) == (0, 0, 0, "2", "")
        assert progress(c, child) == (1, 1, 1, "", "")
        assert queue_jobs(clock_server, "callbacks") == []


def test_deep_nesting_fires_from_the_bottom_up(clock_server: EmbeddedServer) -> None:
    depth = 200
    with Raw(clock_server) as c:
        bids = [new_batch(c, success=callback("Level", args=[0]))]
        for level in range(1, depth):
            bids.append(new_batch(c, parent_bid=bids[-1], success=callback("Level", args=[level])))
        push_members(c, bids[-1], ["deepest-m-1"])
        for bid in bids:
            c.cmd(f"BATCH COMMIT {bid}")
        assert all(progress(c, bid)[4] == "" for bid in bids)
        ack(c, take(c)["jid"])
        for level in reversed(range(depth)):
            jobs = queue_jobs(clock_server, "callbacks")
            assert [j["args"] for j in jobs] == [[level]]  # one level at a time
            job = take(c, "callbacks")
            assert job["custom"]["_bid"] == bids[level]
            ack(c, job["jid"])
        assert all(progress(c, bid)[4] == "2" for bid in bids)
        assert queue_jobs(clock_server, "callbacks") == []


def test_a_child_added_to_a_finished_parent_changes_nothing_fired(
    clock_server: EmbeddedServer,
) -> None:
    with Raw(clock_server) as c:
        parent = new_batch(c, success=callback("PSuccess"))
        c.cmd(f"BATCH COMMIT {parent}")
        ack(c, take(c, "callbacks")["jid"])
        child = new_batch(c, parent_bid=parent, success=callback("CSuccess"))
        c.cmd(f"BATCH COMMIT {child}")
        ack(c, take(c, "callbacks")["jid"])
        assert progress(c, parent)[4] == "2" and progress(c, child)[4] == "2"
        assert queue_jobs(clock_server, "callbacks") == []


def test_a_childs_callback_may_add_the_next_child(clock_server: EmbeddedServer) -> None:
    """The workflow of the Ruby client's complex_batch example: a child's success callback
    reopens the parent (``_pbid``) and adds the next step before it ACKs."""
    with Raw(clock_server) as c:
        parent = new_batch(c, success=callback("Done"))
        step1 = new_batch(c, parent_bid=parent, success=callback("Step1Done"))
        push_members(c, step1, ["step1-m-001"])
        c.cmd(f"BATCH COMMIT {step1}")
        c.cmd(f"BATCH COMMIT {parent}")
        ack(c, take(c)["jid"])
        cb = take(c, "callbacks")
        assert c.cmd(f"BATCH OPEN {cb['custom']['_pbid']}") == parent.encode()
        step2 = new_batch(c, parent_bid=parent, success=callback("Step2Done"))
        push_members(c, step2, ["step2-m-001"])
        c.cmd(f"BATCH COMMIT {step2}")
        c.cmd(f"BATCH COMMIT {parent}")
        ack(c, cb["jid"])
        assert progress(c, parent)[4] == ""  # waits for step 2
        ack(c, take(c)["jid"])
        assert take(c, "callbacks")["jobtype"] == "Step2Done"
        assert progress(c, parent)[4] == ""


def test_the_read_api(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        first = new_batch(c, description="first", success=callback("S"))
        second = new_batch(c, description="second", parent_bid=first, success=callback("S"))
        push_members(c, second, ["read-api-m1", "read-api-m2"])
        fail(c, take(c)["jid"])
        raw_status = c.cmd(f"BATCH STATUS {second}")
    ext = batches_of(clock_server.manager)
    assert isinstance(ext, Batches)
    assert clock_server.call(ext.count) == 2
    newest = clock_server.call(ext.list_batches, 0, 10)
    assert [b.bid for b in newest] == [second, first]
    assert [b.bid for b in clock_server.call(ext.list_batches, 1, 10)] == [first]
    info = clock_server.call(ext.get_batch, second)
    assert info is not None
    assert (info.total, info.pending, info.failed, info.committed) == (2, 2, 1, False)
    assert (info.parent_bid, info.description, info.has_success, info.has_complete) == (
        first,
        "second",
        True,
        False,
    )
    assert clock_server.call(ext.get_batch, "b-nothing") is None
    assert clock_server.call(ext.children, first) == [second]
    assert clock_server.call(ext.failed_members, second) == ["read-api-m1"]
    assert clock_server.call(ext.status_json, second) == raw_status


class RefuseCallbacksOnce(Extension):
    """Refuses the first callback job pushed (as another extension might)."""

    refused = 0

    def check_push(self, job: Payload) -> str | None:
        if "_cb" in job["custom"] and not self.refused:
            self.refused += 1
            return "refused once"
        return None


def test_a_refused_callback_is_tried_again_at_the_next_evaluation() -> None:
    refuser, batches = RefuseCallbacksOnce(), Batches()
    m = Manager(MemoryStorage(), ManualClock(MANUAL_EPOCH), extensions=[refuser, batches])
    assert m.hooks is not None
    command = m.hooks.commands[b"BATCH"]

    class Producer:
        wid = ""

    new = command(b'NEW {"success":{"jobtype":"S","queue":"cb"}}', Producer())
    bid = new.split(b"\r\n")[1].decode()
    assert command(f"COMMIT {bid}".encode(), Producer()) == b"+OK\r\n"
    assert refuser.refused == 1 and not m.queues.get("cb")
    assert b'"success_st":""' in command(f"STATUS {bid}".encode(), Producer())
    assert command(f"COMMIT {bid}".encode(), Producer()) == b"+OK\r\n"  # evaluates again
    assert b'"success_st":"1"' in command(f"STATUS {bid}".encode(), Producer())
    assert len(m.queues["cb"]) == 1


class ExpireAtFetch(Extension):
    """Discards at FETCH the jobs that ask for it (as expiring jobs will)."""

    def fetch(self, job: Payload, queue: str, wid: str) -> str | None:
        return "job expired" if job["custom"].get("expire") else None


def test_a_member_expired_at_fetch_counts_as_failed() -> None:
    batches, tracking = Batches(), Tracking()
    m = Manager(
        MemoryStorage(), ManualClock(MANUAL_EPOCH), extensions=[ExpireAtFetch(), tracking, batches]
    )
    assert m.hooks is not None
    command = m.hooks.commands[b"BATCH"]

    class Producer:
        wid = ""

    new = command(b'NEW {"complete":{"jobtype":"C","queue":"cb"}}', Producer())
    bid = new.split(b"\r\n")[1].decode()
    member = {"jid": "member-expires", "jobtype": "T", "args": []}
    member["custom"] = {"bid": bid, "expire": 1, "track": 1}
    assert m.push(member) is None
    assert command(f"COMMIT {bid}".encode(), Producer()) == b"+OK\r\n"
    assert m.fetch(["default"], "w") is None  # discarded
    status = command(f"STATUS {bid}".encode(), Producer())
    assert b'"total":1,"pending":1,"failed":1' in status  # it never succeeds
    assert b'"complete_st":"1"' in status and len(m.queues["cb"]) == 1
    assert tracking.track_of("member-expires") is None  # docs 4.4: its record goes

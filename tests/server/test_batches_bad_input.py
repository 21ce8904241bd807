"""Bad BATCH input gets a clear ``-ERR`` and changes nothing (docs/enterprise.md 3.11)."""

from __future__ import annotations

import json

import pytest
from tests.server.batchkit import callback, dumps, new_batch, progress, queue_jobs
from tests.server.rawclient import Raw

from werk._protocol.resp import ErrorReply
from werk.server import EmbeddedServer
from werk.server._features import batches_of


def err(text: str) -> ErrorReply:
    return ErrorReply("ERR", text)


def batch_count(srv: EmbeddedServer) -> int:
    ext = batches_of(srv.manager)
    assert ext is not None
    return srv.call(ext.count)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{", "invalid JSON: unexpected end of JSON input"),
        ("[1]", "invalid JSON: json: cannot unmarshal array into Go value of type client.Batch"),
        (
            '{"description":5,"success":{"jobtype":"S"}}',
            "invalid JSON: json: cannot unmarshal number into Go struct field "
            "Batch.description of type string",
        ),
        (
            '{"success":"Done"}',
            "invalid JSON: json: cannot unmarshal string into Go struct field "
            "Batch.success of type client.Job",
        ),
        (
            '{"success":{"jobtype":"S","args":{}}}',
            "invalid JSON: json: cannot unmarshal object into Go struct field "
            "Batch.success.args of type []interface {}",
        ),
        ("{}", "batch must have a success or complete callback"),
        (
            '{"description":"x","success":null,"complete":null}',
            "batch must have a success or complete callback",
        ),
        (
            '{"bid":"b-mine","success":{"jobtype":"S"}}',
            "bid must be blank when creating a new batch",
        ),
        ('{"success":{"args":[]}}', "invalid success callback: jobs must have a jobtype parameter"),
        (
            '{"complete":{"jobtype":"C","jid":"short"}}',
            "invalid complete callback: jobs must have a reasonable jid parameter",
        ),
        (
            '{"complete":{"jobtype":"C","queue":"bad queue"}}',
            'invalid complete callback: cannot get "bad queue" queue: '
            "queue names must match \\A[a-zA-Z0-9._-]+\\z",
        ),
        (
            '{"complete":{"jobtype":"C","at":"tomorrow"}}',
            "invalid complete callback: invalid timestamp for 'at': \"tomorrow\": parsing time "
            '"tomorrow" as "2006-01-02T15:04:05.999999999Z07:00": '
            'cannot parse "tomorrow" as "2006"',
        ),
        (
            '{"complete":{"jobtype":"C","reserve_for":90000}}',
            "invalid complete callback: jobs cannot be reserved for more than one day",
        ),
        (
            '{"complete":{"jobtype":"C","custom":{"bid":"b-x"}}}',
            "invalid complete callback: a callback cannot be a member of a batch (custom.bid)",
        ),
        ('{"parent_bid":"b-unknown","success":{"jobtype":"S"}}', "no such batch b-unknown"),
    ],
)
def test_a_bad_new_creates_nothing(clock_server: EmbeddedServer, body: str, error: str) -> None:
    with Raw(clock_server) as c:
        assert c.cmd("BATCH NEW " + body) == err(error)
    assert batch_count(clock_server) == 0


def test_null_options_are_absent(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(
            c, description=None, parent_bid=None, complete=None, success={"jobtype": "S"}
        )
        assert json.loads(c.cmd(f"BATCH STATUS {bid}"))["bid"] == bid


def test_unknown_bids_and_sub_commands(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        for sub in ("OPEN", "COMMIT", "STATUS"):
            assert c.cmd(f"BATCH {sub} b-unknown") == err("no such batch b-unknown")
        assert c.cmd("BATCH STATUS ") == err("no such batch ")
        assert c.cmd("BATCH") == err("no such BATCH subcommand: ")
        assert c.cmd("BATCH child x") == err("no such BATCH subcommand: CHILD")
    assert batch_count(clock_server) == 0


def test_a_member_of_an_unknown_batch_is_refused(clock_server: EmbeddedServer) -> None:
    with Raw(clock_server) as c:
        bid = new_batch(c, success=callback("S"))
        assert c.push("member-bad-1", custom={"bid": "b-unknown"}) == err("no such batch b-unknown")
        assert c.push("member-bad-2", custom={"bid": 7}) == err("invalid bid: must be a string")
        assert c.push("member-bad-3", custom={"bid": ""}) == err("no such batch ")
        jobs = [
            {"jid": "member-ok-01", "jobtype": "T", "args": [], "custom": {"bid": bid}},
            {"jid": "member-bad-4", "jobtype": "T", "args": [], "custom": {"bid": "b-gone"}},
        ]
        assert json.loads(c.cmd("PUSHB " + dumps(jobs))) == {"member-bad-4": "no such batch b-gone"}
        assert progress(c, bid) == (1, 1, 0, "", "")
    assert [j["jid"] for j in queue_jobs(clock_server, "default")] == ["member-ok-01"]

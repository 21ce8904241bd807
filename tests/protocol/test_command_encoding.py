"""Every command encoder, byte for byte, and what it refuses to send."""

from __future__ import annotations

import json

import pytest

from werk._errors import LocalProtocolError
from werk._protocol import command_lines as commands


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (commands.hello({"v": 2}), b'HELLO {"v":2}\r\n'),
        (
            commands.push({"jid": "jid-ack-000001", "jobtype": "TestJob", "args": [1, "a"]}),
            b'PUSH {"jid":"jid-ack-000001","jobtype":"TestJob","args":[1,"a"]}\r\n',
        ),
        (
            commands.pushb([{"jid": "a" * 8, "jobtype": "T", "args": []}]),
            b'PUSHB [{"jid":"aaaaaaaa","jobtype":"T","args":[]}]\r\n',
        ),
        (commands.pushb([]), b"PUSHB []\r\n"),
        (commands.fetch(["critical", "default"]), b"FETCH critical default\r\n"),
        (commands.ack("jid-ack-000001"), b'ACK {"jid":"jid-ack-000001"}\r\n'),
        (
            commands.fail("j1", "RuntimeError", "boom", ["a.py:1", "b.py:2"]),
            b'FAIL {"jid":"j1","errtype":"RuntimeError","message":"boom",'
            b'"backtrace":["a.py:1","b.py:2"]}\r\n',
        ),
        (commands.fail("j1", "E", "m"), b'FAIL {"jid":"j1","errtype":"E","message":"m"}\r\n'),
        (commands.beat("w1"), b'BEAT {"wid":"w1"}\r\n'),
        (
            commands.beat("w1", "quiet", 48812),
            b'BEAT {"wid":"w1","current_state":"quiet","rss_kb":48812}\r\n',
        ),
        (commands.info(), b"INFO\r\n"),
        (commands.flush(), b"FLUSH\r\n"),
        (commands.end(), b"END\r\n"),
        (
            commands.mutate({"cmd": "kill", "target": "retries", "filter": {"jids": ["x"]}}),
            b'MUTATE {"cmd":"kill","target":"retries","filter":{"jids":["x"]}}\r\n',
        ),
        (commands.queue("pause", ["a", "b"]), b"QUEUE PAUSE a b\r\n"),
        (commands.queue("RESUME", ["*"]), b"QUEUE RESUME *\r\n"),
        (commands.queue("LATENCY", ["pq", "oq"]), b"QUEUE LATENCY pq oq\r\n"),
        (commands.batch_new({"bid": ""}), b'BATCH NEW {"bid":""}\r\n'),
        (commands.batch_open("b-1"), b"BATCH OPEN b-1\r\n"),
        (commands.batch_commit("b-1"), b"BATCH COMMIT b-1\r\n"),
        (commands.batch_status("b-1"), b"BATCH STATUS b-1\r\n"),
        (commands.track_get("jid1"), b"TRACK GET jid1\r\n"),
        (
            commands.track_set({"jid": "j", "percent": 50}),
            b'TRACK SET {"jid":"j","percent":50}\r\n',
        ),
    ],
)
def test_encoders(line: bytes, expected: bytes) -> None:
    assert line == expected


def test_json_is_compact_single_line_utf8() -> None:
    line = commands.push({"jid": "j" * 8, "jobtype": "T", "args": ["é", "a\nb", "<&>", 1.5]})
    assert line.count(b"\n") == 1 and line.endswith(b"\r\n")
    assert "é".encode() in line and b"a\\nb" in line
    assert b" " not in line[5:]
    assert json.loads(line[5:]) == {
        "jid": "j" * 8,
        "jobtype": "T",
        "args": ["é", "a\nb", "<&>", 1.5],
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda: commands.fetch([]),
        lambda: commands.fetch([""]),
        lambda: commands.fetch(["a b"]),
        lambda: commands.fetch(["tab\there"]),
        lambda: commands.queue("PAUSE", []),
        lambda: commands.queue("PAUSE", ["x y"]),
        lambda: commands.mutate({"cmd": "kill", "target": "dead", "filter": {"regexp": "a b"}}),
        lambda: commands.batch_open(""),
        lambda: commands.track_get("a b"),
    ],
)
def test_refuses_what_the_protocol_cannot_carry(make: object) -> None:
    with pytest.raises(LocalProtocolError):
        make()  # type: ignore[operator]


def test_json_the_wire_cannot_carry_is_refused_before_encoding() -> None:
    # The encoders trust their input (orjson would turn NaN into null); job validation is
    # what keeps such values off the wire.
    from werk._errors import JobValidationError
    from werk._job import checked_job

    for bad in (float("nan"), float("inf"), {1: "x"}, b"bytes", {"a": {1, 2}}):
        with pytest.raises(JobValidationError):
            checked_job("T", [bad], None, "default", None, None, None, None, None)

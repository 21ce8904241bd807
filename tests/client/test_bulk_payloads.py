"""push_bulk's lines: each job sent as ``wire_payload(checked_job(...))`` describes it."""

from __future__ import annotations

import json
from typing import Any

import werk
from werk._job import checked_job, wire_payload
from werk._protocol import command_lines, jsonc
from werk.client._requests import BULK_CHUNK, BulkPush


class MyJob(werk.Job):
    __slots__ = ()


def expected(jobtype: str, args: list[Any], jid: str, **options: Any) -> dict[str, Any]:
    return wire_payload(
        checked_job(
            jobtype,
            args,
            jid,
            options.get("queue", "default"),
            options.get("retry"),
            options.get("reserve_for"),
            options.get("at"),
            options.get("backtrace"),
            options.get("custom"),
        )
    )


def test_a_mix_of_jobs_and_mappings_is_sent_as_checked_job_describes() -> None:
    items: list[Any] = [
        werk.Job("A", [1]),
        werk.Job("B", (2, "é"), queue="q", retry=0),
        MyJob("C", [{"k": [None, 1.5]}]),
        {"jobtype": "D", "args": [3]},
        {"jobtype": "E", "args": [4], "queue": "q", "custom": {"x": 1}},
        werk.Job("F", [5], custom={"y": 2}, at="2030-01-01T00:00:00Z", backtrace=3),
    ]
    bulk = BulkPush(items)
    ((jids, line),) = bulk.chunks
    sent = json.loads(line.removeprefix(b"PUSHB ").removesuffix(b"\r\n"))
    assert [job["jid"] for job in sent] == jids
    want = [
        expected("A", [1], jids[0]),
        expected("B", [2, "é"], jids[1], queue="q", retry=0),
        expected("C", [{"k": [None, 1.5]}], jids[2]),
        expected("D", [3], jids[3]),
        expected("E", [4], jids[4], queue="q", custom={"x": 1}),
        expected("F", [5], jids[5], custom={"y": 2}, at="2030-01-01T00:00:00Z", backtrace=3),
    ]
    assert line == command_lines.pushb(want)
    # The same bytes from the standard library's encoder (the path without orjson).
    assert line == b"PUSHB " + jsonc._std_dumps(want) + b"\r\n"


def test_plain_jobs_are_split_into_lines_of_bulk_chunk() -> None:
    jobs = [werk.Job("T", [n]) for n in range(BULK_CHUNK + 3)]
    chunks = BulkPush(jobs).chunks
    assert [len(jids) for jids, _ in chunks] == [BULK_CHUNK, 3]
    for jids, line in chunks:
        part = [job for job in jobs if job.jid in set(jids)]
        assert line == command_lines.pushb([expected("T", job.args, job.jid) for job in part])

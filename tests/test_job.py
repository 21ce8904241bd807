"""werk.Job: a job with no options takes a shorter path, by the same rules."""

from __future__ import annotations

from typing import Any

import pytest

import werk
from werk._job import checked_job, wire_payload

BAD = [
    ("", [1]),
    (None, [1]),
    (42, [1]),
    ("T", 5),
    ("T", "abc"),
    ("T", [float("nan")]),
    ("T", [b"bytes"]),
    ("T", [{1: "x"}]),
]


@pytest.mark.parametrize(("jobtype", "args"), BAD)
@pytest.mark.parametrize("options", [{}, {"queue": "other"}, {"retry": 3}])
def test_a_bad_jobtype_or_args_is_refused_with_or_without_options(
    jobtype: Any, args: Any, options: dict[str, Any]
) -> None:
    with pytest.raises(werk.JobValidationError) as info:
        werk.Job(jobtype, args, **options)
    assert info.value.field in ("jobtype", "args")


def test_a_job_without_options_is_the_job_checked_job_describes() -> None:
    job = werk.Job("Resize", (1, "two"))
    expected = wire_payload(checked_job("Resize", [1, "two"], job.jid, "default", *[None] * 5))
    assert (
        job.to_dict()
        == expected
        == {
            "jid": job.jid,
            "jobtype": "Resize",
            "args": [1, "two"],
            "retry": 25,
        }
    )
    assert (job.queue, job.retry, job.reserve_for, job.at, job.backtrace, job.custom) == (
        "default",
        None,
        None,
        None,
        None,
        None,
    )
    assert (job.created_at, job.enqueued_at, job.failure) == (None, None, None)
    assert isinstance(job.args, list) and len(job.jid) == 16


def test_to_dict_sends_every_option_that_is_set() -> None:
    job = werk.Job(
        "T",
        [1],
        jid="0123456789",
        queue="q",
        retry=0,
        reserve_for=600,
        at="2030-01-01T00:00:00Z",
        backtrace=5,
        custom={"k": "v"},
    )
    job.created_at = "2029-01-01T00:00:00Z"
    assert job.to_dict() == {
        "jid": "0123456789",
        "jobtype": "T",
        "args": [1],
        "queue": "q",
        "retry": 0,
        "reserve_for": 600,
        "at": "2030-01-01T00:00:00Z",
        "backtrace": 5,
        "custom": {"k": "v"},
        "created_at": "2029-01-01T00:00:00Z",
    }

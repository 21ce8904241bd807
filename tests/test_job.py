"""werk.Job: a job with no options takes a shorter path, by the same rules."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import werk
from werk._job import checked_job, plain_payload, wire_payload
from werk._protocol.command_lines import pushb

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


FIELDS = ("jid", "queue", "retry", "reserve_for", "at", "backtrace", "custom")
OPTIONS: list[dict[str, Any]] = [
    {},
    {"queue": "q"},
    {"queue": "default", "retry": None},
    {"retry": 0},
    {"retry": -1},
    {"reserve_for": 600},
    {"at": "2030-01-01T00:00:00Z"},
    {"backtrace": 5},
    {"custom": {"k": "v"}},
    {"custom": {}},
    {"jid": "0123456789", "queue": "q", "retry": 3, "custom": {"a": [1, {"b": None}]}},
]
ARGS: list[Any] = [[], [1], (1, "two"), [1.5, None, True, "é", {"a": [1]}], [2**70]]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("args", ARGS)
def test_a_jobs_payload_is_the_one_checked_job_describes(
    args: Any, options: dict[str, Any]
) -> None:
    job = werk.Job("Resize", args, **options)
    given = {name: options.get(name) for name in FIELDS}
    given["jid"] = job.jid
    given["queue"] = options.get("queue", "default")
    expected = wire_payload(checked_job("Resize", list(args), *given.values()))
    assert job.to_dict() == expected
    assert list(job.to_dict()) == list(expected)  # the same key order: the same bytes
    assert pushb([job.to_dict()]) == pushb([expected])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("queue", "other"),
        ("retry", 0),
        ("reserve_for", 60),
        ("at", "2030-01-01T00:00:00Z"),
        ("backtrace", 3),
        ("custom", {"k": 1}),
        ("created_at", "2029-01-01T00:00:00Z"),
        ("jid", "a-jid-of-mine"),
        ("args", [7]),
    ],
)
def test_a_field_set_after_a_plain_job_is_built_is_sent(name: str, value: Any) -> None:
    job = werk.Job("Resize", [1])
    setattr(job, name, value)
    payload = job.to_dict()
    assert payload[name] == value
    assert payload == {
        "jid": job.jid,
        "jobtype": "Resize",
        "args": job.args,
        **({"queue": job.queue} if job.queue != "default" else {}),
        "retry": 25 if job.retry is None else job.retry,
        **{k: getattr(job, k) for k in ("reserve_for", "at", "backtrace") if getattr(job, k)},
        **({"custom": job.custom} if job.custom else {}),
        **({"created_at": job.created_at} if job.created_at else {}),
    }


def test_a_plain_jobs_args_are_a_copy_and_a_list() -> None:
    args = [1, [2]]
    job = werk.Job("T", args)
    args.append(3)
    assert job.args == [1, [2]] and job.args is not args
    assert werk.Job("T", (1, 2)).args == [1, 2]
    assert werk.Job("T").args == []


class Text(str):
    pass


class Items(list[Any]):
    pass


def test_subclasses_of_str_and_list_take_the_checked_path() -> None:
    job = werk.Job(Text("T"), Items([1, Text("x")]))
    assert job.to_dict() == {"jid": job.jid, "jobtype": "T", "args": [1, "x"], "retry": 25}
    with pytest.raises(werk.JobValidationError) as info:
        werk.Job(Text(""), [1])
    assert info.value.field == "jobtype"
    with pytest.raises(werk.JobValidationError) as info:
        werk.Job("T", Items([float("inf")]))
    assert info.value.field == "args"


def test_job_keeps_its_documented_signature_and_argument_errors() -> None:
    params = inspect.signature(werk.Job).parameters
    assert list(params)[:2] == ["jobtype", "args"]
    assert all(p.kind is p.KEYWORD_ONLY for p in list(params.values())[2:])
    assert set(params) >= {"jid", "queue", "retry", "custom", "unique_for", "expires_at"}
    calls: list[tuple[Callable[[], Any], str]] = [
        (lambda: werk.Job("T", [1], 3), "takes from 2 to 3 positional arguments but 4"),
        (lambda: werk.Job("T", [1], nope=1), "got an unexpected keyword argument 'nope'"),
        (lambda: werk.Job(), "missing 1 required positional argument: 'jobtype'"),
        (lambda: werk.Job("T", jobtype="U"), "got multiple values for argument 'jobtype'"),
    ]
    for call, message in calls:
        with pytest.raises(TypeError, match=f"^Job.__init__\\(\\) {message}"):
            call()


def test_options_given_as_their_defaults_make_the_same_job() -> None:
    plain = werk.Job(jobtype="T", args=[1])
    same = werk.Job("T", [1], jid=None, queue="default", retry=None, custom=None)
    assert plain.to_dict() == {**same.to_dict(), "jid": plain.jid}
    assert werk.Job("T", [1], jid="0123456789").jid == "0123456789"


class MyJob(werk.Job):
    __slots__ = ("note",)

    def __init__(self, note: str, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.note = note


def test_a_subclass_calls_either_path_through_super() -> None:
    assert MyJob("n", "T", [1]).to_dict()["args"] == [1]
    assert MyJob("n", "T", [1], queue="q").to_dict()["queue"] == "q"
    with pytest.raises(werk.JobValidationError):
        MyJob("n", "T", [1], queue="bad queue")


@pytest.mark.parametrize(
    ("jobtype", "args"), [*BAD, (Text(""), [1]), ("T", Items([[float("inf")]]))]
)
def test_the_push_paths_refuse_what_checked_job_refuses(jobtype: Any, args: Any) -> None:
    with pytest.raises(werk.JobValidationError) as want:
        checked_job(jobtype, args, None, "default", *[None] * 5)
    with pytest.raises(werk.JobValidationError) as got:
        plain_payload(jobtype, args)
    assert (got.value.field, str(got.value)) == (want.value.field, str(want.value))
    with pytest.raises(werk.JobValidationError) as got:
        werk.Job(jobtype, args)
    assert (got.value.field, str(got.value)) == (want.value.field, str(want.value))


@pytest.mark.parametrize("args", [[], (), [1, "a"], (1, [2, {"k": None}]), Items([1])])
def test_the_push_paths_send_what_checked_job_describes(args: Any) -> None:
    payload = plain_payload("T", args)
    assert payload == wire_payload(checked_job("T", args, payload["jid"], "default", *[None] * 5))
    assert payload["args"] is args

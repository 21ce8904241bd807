"""The job: a typed model of Faktory's job payload, validated as the server would.

:class:`Job` is what users build and what FETCH returns; :func:`checked_job` and
:func:`wire_payload` build the same wire dict without a Job, for the push path.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from werk._enterprise import enterprise_custom
from werk._errors import JobValidationError
from werk._protocol.timefmt import format_time, parse_time

__all__ = [
    "DEFAULT_RESERVE_FOR",
    "DEFAULT_RETRY",
    "MAX_RESERVE_FOR",
    "MIN_JID_BYTES",
    "MIN_RESERVE_FOR",
    "QUEUE_NAME_RE",
    "Failure",
    "Job",
    "When",
    "checked_job",
    "enterprise_custom",
    "new_jid",
    "plain_payload",
    "validate_at",
    "wire_payload",
]

QUEUE_NAME_RE: Final = re.compile(r"\A[a-zA-Z0-9._-]+\Z")
MIN_JID_BYTES: Final = 8
MAX_RESERVE_FOR: Final = 86400
MIN_RESERVE_FOR: Final = 60
DEFAULT_RESERVE_FOR: Final = 1800
DEFAULT_RETRY: Final = 25

When = datetime | timedelta | str
"""What ``at`` accepts: an aware datetime, a delay from now, or an RFC3339 string with a zone."""

# Random bytes are drawn for 256 jids at a time: one getrandom() system call and one base64
# pass instead of one of each per job (the push path). Each jid is popped once (list.pop is
# atomic, so threads never share one), and a forked child forgets the parent's unused jids.
_JID_BATCH: Final = 256
_jids: list[str] = []


def _more_jids() -> str:
    text = base64.urlsafe_b64encode(os.urandom(12 * _JID_BATCH)).decode("ascii")
    _jids.extend([text[n : n + 16] for n in range(0, 16 * _JID_BATCH, 16)])
    return _jids.pop()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_jids.clear)


def new_jid() -> str:
    """A new unique job id: 12 random bytes, base64url, 16 characters (as the Go client).

    Example::

        >>> len(new_jid()), new_jid() != new_jid()
        (16, True)
    """
    try:
        return _jids.pop()
    except IndexError:
        return _more_jids()


def validate_at(at: When | None) -> str | None:
    """Normalise ``at`` to the RFC3339 string the server parses, or raise JobValidationError.

    A naive datetime is taken as local time (Python's convention); a timedelta counts from now.
    """
    if at is None or at == "":
        return None
    if isinstance(at, timedelta):
        return format_time(datetime.now(timezone.utc) + at)
    if isinstance(at, datetime):
        return format_time(at.astimezone(timezone.utc))
    if isinstance(at, str):
        try:
            parse_time(at)
        except ValueError:
            raise JobValidationError(
                "at", f"must be an RFC3339 timestamp with a zone (Z or +HH:MM), got {at!r}"
            ) from None
        return at
    raise JobValidationError("at", f"must be a datetime, timedelta or str, got {type(at).__name__}")


def _check_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise JobValidationError(name, f"must be an int, got {type(value).__name__}")
    return value


# Exact types that need no further look (an exact-type set lookup is the cheap test on the
# push path; subclasses take the isinstance route below).
_PLAIN: Final = frozenset((str, int, bool, type(None)))


def _check_json(name: str, value: object, depth: int = 0) -> None:
    # The server re-encodes with Go's JSON: only JSON-native values survive the trip.
    if type(value) in _PLAIN or isinstance(value, (str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JobValidationError(name, f"JSON cannot carry {value!r}")
        return
    if depth > 64:
        raise JobValidationError(name, "nested too deeply")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json(name, item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise JobValidationError(name, f"object keys must be strings, got {key!r}")
            _check_json(name, item, depth + 1)
        return
    raise JobValidationError(name, f"{type(value).__name__} is not JSON-serialisable: {value!r}")


Fields = tuple[
    str,
    str,
    Sequence[Any],
    str,
    int | None,
    int | None,
    str | None,
    int | None,
    dict[str, Any] | None,
]
"""A job's fields in wire order: jid, jobtype, args, queue, retry, reserve_for, at (RFC3339),
backtrace, custom."""


def _check_args(args: object) -> None:
    if not isinstance(args, (list, tuple)):
        raise JobValidationError("args", f"must be a list or tuple, got {type(args).__name__}")
    for item in args:
        if type(item) not in _PLAIN:
            _check_json("args", item, 1)


def plain_payload(jobtype: object, args: object) -> dict[str, Any]:
    """``wire_payload(checked_job(jobtype, args, None, "default", ...))`` for a job with
    no options (the commonest push), checked by the same rules with less work.

    Example::

        >>> sorted(plain_payload("Resize", (42,)))
        ['args', 'jid', 'jobtype', 'retry']
    """
    return {
        "jid": _plain_jid(jobtype, args),
        "jobtype": jobtype,
        "args": args,
        "retry": DEFAULT_RETRY,
    }


def _plain_jid(jobtype: object, args: object) -> str:
    # A job with no options: _check_plain's rules, then new_jid(). Inline for the usual exact
    # types, because on a push_bulk of thousands a call per check costs more than the check.
    if type(jobtype) is str and jobtype and (type(args) is list or type(args) is tuple):
        for item in args:
            if type(item) not in _PLAIN:
                _check_json("args", item, 1)
    else:
        _check_plain(jobtype, args)
    try:
        return _jids.pop()
    except IndexError:
        return _more_jids()


def _check_plain(jobtype: object, args: object) -> None:
    # checked_job's rules for a job with no options: only these two can be wrong.
    if not isinstance(jobtype, str) or not jobtype:
        raise JobValidationError("jobtype", "must be a non-empty string")
    _check_args(args)


def checked_job(
    jobtype: object,
    args: object,
    jid: object,
    queue: object,
    retry: object,
    reserve_for: object,
    at: When | None,
    backtrace: object,
    custom: object,
) -> Fields:
    """A new job's fields (in :class:`Job`'s order) checked as the server would check them,
    normalised (a new jid, ``at`` as RFC3339, ``custom`` as a dict) and in wire order.

    Raises :class:`~werk.JobValidationError` naming the field. The push path sends
    ``wire_payload(checked_job(...))`` without building a :class:`Job`.
    """
    # The one place the server's job rules live: Job() and the push path call it.
    if not isinstance(jobtype, str) or not jobtype:
        raise JobValidationError("jobtype", "must be a non-empty string")
    if jid is None:
        jid = new_jid()
    elif not isinstance(jid, str) or len(jid.encode("utf-8")) < MIN_JID_BYTES:
        raise JobValidationError("jid", f"must be a string of at least {MIN_JID_BYTES} bytes")
    _check_args(args)
    if queue != "default" and (not isinstance(queue, str) or QUEUE_NAME_RE.match(queue) is None):
        raise JobValidationError("queue", f"must match [a-zA-Z0-9._-]+, got {queue!r}")
    if retry is not None:
        _check_int("retry", retry)
    if reserve_for is not None and _check_int("reserve_for", reserve_for) > MAX_RESERVE_FOR:
        raise JobValidationError(
            "reserve_for", f"cannot be more than one day ({MAX_RESERVE_FOR} s)"
        )
    if backtrace is not None:
        _check_int("backtrace", backtrace)
    if custom is not None:
        if not isinstance(custom, Mapping):
            raise JobValidationError("custom", "must be a mapping")
        custom = dict(custom)
        _check_json("custom", custom)
    at_text = validate_at(at) if at is not None else None
    return jid, jobtype, args, queue, retry, reserve_for, at_text, backtrace, custom  # type: ignore[return-value]


def wire_payload(fields: Fields, created_at: str | None = None) -> dict[str, Any]:
    """The JSON object a job is sent as: ``jid``, ``jobtype``, ``args`` and ``retry`` (25
    when unset) always; the rest when set (see :class:`Job` about ``retry``)."""
    return _wire(*fields, created_at)


def _wire(
    jid: str,
    jobtype: str,
    args: Sequence[Any],
    queue: str,
    retry: int | None,
    reserve_for: int | None,
    at: str | None,
    backtrace: int | None,
    custom: dict[str, Any] | None,
    created_at: str | None,
) -> dict[str, Any]:
    d: dict[str, Any] = {"jid": jid, "jobtype": jobtype, "args": args}
    if queue != "default":
        d["queue"] = queue
    d["retry"] = DEFAULT_RETRY if retry is None else retry
    if reserve_for is not None:
        d["reserve_for"] = reserve_for
    if at:
        d["at"] = at
    if backtrace is not None:
        d["backtrace"] = backtrace
    if custom:
        d["custom"] = custom
    if created_at:
        d["created_at"] = created_at
    return d


@dataclass(frozen=True)
class Failure:
    """The server's record of a job's failures (read-only).

    ``retry_count`` is 0 after the first failure; ``remaining`` is the retries left;
    ``failed_at`` is the *first* failure; ``next_at`` the scheduled retry.
    """

    retry_count: int = 0
    remaining: int = 0
    failed_at: str | None = None
    next_at: str | None = None
    message: str | None = None
    errtype: str | None = None
    backtrace: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Failure:
        """Build from the ``failure`` object of a job payload."""
        return cls(
            retry_count=int(data.get("retry_count") or 0),
            remaining=int(data.get("remaining") or 0),
            failed_at=data.get("failed_at"),
            next_at=data.get("next_at"),
            message=data.get("message"),
            errtype=data.get("errtype"),
            backtrace=tuple(data.get("backtrace") or ()),
        )


class Job:
    """One unit of work: a ``jobtype`` with JSON ``args``, and how the server should treat it.

    ``retry=None`` means Faktory's default of 25 retries, sent explicitly as ``"retry":25``
    because Faktory 1.6 to 1.10 turn the ``retry`` of any PUSH into the server-wide default
    for later jobs that omit it (one producer's ``retry=0`` would silently stop every other
    job from being retried). ``0`` discards the job on failure; a negative count sends it
    straight to the dead set. ``at`` schedules it (an
    aware datetime, a timedelta from now, or an RFC3339 string). ``created_at``,
    ``enqueued_at`` and ``failure`` are set by the server and read-only here.

    Validation follows the server's own rules and raises
    :class:`~werk.JobValidationError` naming the field.

    Example::

        >>> job = Job("Resize", args=[42, "large"], queue="images", retry=5)
        >>> job.to_dict()["queue"]
        'images'
        >>> Job("Resize", args=[1], queue="bad queue!")
        Traceback (most recent call last):
        ...
        werk.JobValidationError: queue: must match [a-zA-Z0-9._-]+, got 'bad queue!'

        client.push(Job("SendEmail", args=["ann@example.com"], at=timedelta(minutes=5)))
    """

    __slots__ = (
        "args",
        "at",
        "backtrace",
        "created_at",
        "custom",
        "enqueued_at",
        "failure",
        "jid",
        "jobtype",
        "queue",
        "reserve_for",
        "retry",
    )

    def __init__(
        self,
        jobtype: str,
        args: Sequence[Any] = (),
        *,
        jid: str | None = None,
        queue: str = "default",
        retry: int | None = None,
        reserve_for: int | None = None,
        at: When | None = None,
        backtrace: int | None = None,
        custom: Mapping[str, Any] | None = None,
        unique_for: float | timedelta | None = None,
        unique_until: str | None = None,
        expires_in: float | timedelta | None = None,
        expires_at: datetime | str | None = None,
    ) -> None:
        if (
            jid is None
            and retry is None
            and reserve_for is None
            and at is None
            and backtrace is None
            and custom is None
            and unique_for is None
            and unique_until is None
            and expires_in is None
            and expires_at is None
            and queue == "default"
        ):
            # No options (the commonest job, as in a push_bulk of thousands): only the
            # jobtype and args to check, the rest is known.
            self.jid = _plain_jid(jobtype, args)
            self.jobtype = jobtype
            self.queue = "default"
            self.retry = self.reserve_for = self.at = self.backtrace = self.custom = None
            self.args = [*args]
            self.created_at: str | None = None
            self.enqueued_at: str | None = None
            self.failure: Failure | None = None
            return
        if (
            unique_for is not None
            or unique_until is not None
            or expires_in is not None
            or expires_at is not None
        ):
            custom = enterprise_custom(custom, unique_for, unique_until, expires_in, expires_at)
        (
            self.jid,
            self.jobtype,
            args,
            self.queue,
            self.retry,
            self.reserve_for,
            self.at,
            self.backtrace,
            self.custom,
        ) = checked_job(jobtype, args, jid, queue, retry, reserve_for, at, backtrace, custom)
        self.args = list(args)
        self.created_at = None
        self.enqueued_at = None
        self.failure = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """A job as the server sent it (FETCH, sets). Not re-validated: the server accepted it.

        Example::

            job = Job.from_dict(json.loads(payload))
        """
        job = cls.__new__(cls)
        job.jid = data["jid"]
        job.jobtype = data["jobtype"]
        job.args = data.get("args") or []
        job.queue = data.get("queue") or "default"
        job.retry = data.get("retry")
        job.reserve_for = data.get("reserve_for")
        job.at = data.get("at")
        job.backtrace = data.get("backtrace")
        job.custom = data.get("custom")
        job.created_at = data.get("created_at")
        job.enqueued_at = data.get("enqueued_at")
        failure = data.get("failure")
        job.failure = Failure.from_dict(failure) if failure else None
        return job

    def to_dict(self) -> dict[str, Any]:
        """The payload to send: ``jid``, ``jobtype``, ``args`` and ``retry`` (25 when unset)
        always; the rest when set."""
        if (
            self.queue == "default"
            and self.retry is None
            and self.reserve_for is None
            and not self.at
            and self.backtrace is None
            and not self.custom
            and not self.created_at
        ):  # no options (push_bulk of thousands): _wire's result without the call
            return {
                "jid": self.jid,
                "jobtype": self.jobtype,
                "args": self.args,
                "retry": DEFAULT_RETRY,
            }
        # The fields one by one: the attrgetter tuple costs more (push_bulk of Jobs).
        return _wire(
            self.jid,
            self.jobtype,
            self.args,
            self.queue,
            self.retry,
            self.reserve_for,
            self.at,
            self.backtrace,
            self.custom,
            self.created_at,
        )

    @property
    def unique_for(self) -> float | None:
        """Seconds the job is unique for (``custom.unique_for``), None when it is not.

        Example::

            >>> Job("Report", [7], unique_for=timedelta(hours=1)).unique_for
            3600
        """
        value = (self.custom or {}).get("unique_for")
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def unique_until(self) -> str | None:
        """When the lock of a unique job is released: ``"success"`` (ACK, the default for
        a unique job) or ``"start"`` (FETCH); None when the job is not unique.

        Example::

            >>> Job("Report", [7], unique_for=60).unique_until
            'success'
        """
        if self.unique_for is None:
            return None
        return "start" if (self.custom or {}).get("unique_until") == "start" else "success"

    @property
    def expires_at(self) -> str | None:
        """The job's deadline (``custom.expires_at``, RFC 3339): a FETCH after it drops the
        job. The server writes it for a job pushed with ``expires_in``.

        Example::

            >>> Job("Report", expires_at="2030-01-01T00:00:00Z").expires_at
            '2030-01-01T00:00:00Z'
        """
        value = (self.custom or {}).get("expires_at")
        return value if isinstance(value, str) else None

    @property
    def retry_count(self) -> int:
        """How many times this job has failed before (0 on its first run)."""
        return 0 if self.failure is None else self.failure.retry_count + 1

    def __repr__(self) -> str:
        return f"Job(jobtype={self.jobtype!r}, jid={self.jid!r}, queue={self.queue!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.to_dict() == self.to_dict()

    __hash__ = None  # type: ignore[assignment]

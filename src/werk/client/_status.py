"""The typed replies of ``BATCH STATUS`` and ``TRACK GET``: :class:`BatchStatus` and
:class:`JobTrack`.

Both are read by key from the JSON object the server sends, the way Faktory Enterprise and
werk's server write it: a missing key or ``null`` takes its empty value (Enterprise omits
empty fields), unknown keys are ignored but kept in ``raw``. A value of the wrong type is a
:class:`~werk.RemoteProtocolError`: it names the field, rather than surfacing later.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from werk._errors import RemoteProtocolError
from werk._protocol.replies import Request, json_object
from werk._protocol.resp import Reply
from werk._protocol.timefmt import parse_time

__all__ = [
    "BatchStatus",
    "CallbackState",
    "JobTrack",
    "TrackState",
    "batch_status",
    "job_track",
]


class CallbackState(str, enum.Enum):
    """Where a batch callback stands: the ``complete_st`` / ``success_st`` of ``BATCH STATUS``.

    ``PENDING`` (``""``): not enqueued yet, or the batch has no such callback; ``ENQUEUED``
    (``"1"``): the callback job was pushed; ``SUCCEEDED`` (``"2"``): it ran and was
    acknowledged. A state never goes back.

    Example::

        if client.batch_status(bid).success_state is werk.CallbackState.SUCCEEDED:
            print("all done")
    """

    PENDING = ""
    ENQUEUED = "1"
    SUCCEEDED = "2"


class TrackState(str, enum.Enum):
    """The ``state`` of a tracked job (``TRACK GET``).

    ``UNKNOWN`` means there is no record: the jid was never pushed, the job is not tracked,
    or its record expired (30 minutes after it finished).

    Example::

        if client.track_get(jid).state is werk.TrackState.WORKING:
            ...
    """

    ENQUEUED = "enqueued"
    WORKING = "working"
    SUCCESS = "success"
    FAILED = "failed"
    DEAD = "dead"
    UNKNOWN = "unknown"


def _field(data: Mapping[str, Any], key: str, kind: type[Any], empty: Any) -> Any:
    value = data.get(key)
    if value is None:
        return empty
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RemoteProtocolError(f"{key} must be a JSON {kind.__name__}, got {value!r:.80}")
    return value


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    text = _field(data, key, str, "")
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise RemoteProtocolError(f"{key}: {exc}") from None


def _enum(kind: type[enum.Enum], data: Mapping[str, Any], key: str, empty: str) -> Any:
    value = _field(data, key, str, empty)
    try:
        return kind(value)
    except ValueError:
        raise RemoteProtocolError(f"{key}: unknown value {value!r:.80}") from None


@dataclass(frozen=True)
class BatchStatus:
    """A batch as ``BATCH STATUS`` reports it (:meth:`werk.Client.batch_status`).

    ``total`` counts the members pushed so far; ``pending`` those not yet succeeded;
    ``failed`` those that failed at least once and have not succeeded since (so
    ``failed <= pending <= total``). ``complete_state`` and ``success_state`` tell where each
    callback stands. ``parent_bid`` is set for a child batch; ``created_at`` is an aware
    datetime. ``raw`` is the decoded JSON object, extra keys included.

    Example::

        status = client.batch_status(bid)
        print(f"{status.succeeded}/{status.total} done, {status.failed} failing")
        if status.success_state is werk.CallbackState.SUCCEEDED:
            print("the success callback has run")
    """

    bid: str
    total: int = 0
    pending: int = 0
    failed: int = 0
    complete_state: CallbackState = CallbackState.PENDING
    success_state: CallbackState = CallbackState.PENDING
    description: str = ""
    parent_bid: str | None = None
    created_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchStatus:
        """Read the JSON object of a ``BATCH STATUS`` reply.

        Example::

            >>> BatchStatus.from_dict({"bid": "b-1", "total": 3, "pending": 1}).succeeded
            2
        """
        return cls(
            bid=_field(data, "bid", str, ""),
            total=_field(data, "total", int, 0),
            pending=_field(data, "pending", int, 0),
            failed=_field(data, "failed", int, 0),
            complete_state=_enum(CallbackState, data, "complete_st", ""),
            success_state=_enum(CallbackState, data, "success_st", ""),
            description=_field(data, "description", str, ""),
            parent_bid=_field(data, "parent_bid", str, "") or None,
            created_at=_time(data, "created_at"),
            raw=dict(data),
        )

    @property
    def succeeded(self) -> int:
        """Members that have succeeded (``total - pending``)."""
        return self.total - self.pending

    @property
    def progress(self) -> float:
        """The fraction of members that have succeeded, from 0.0 to 1.0 (1.0 when empty)."""
        return self.succeeded / self.total if self.total else 1.0

    @property
    def complete_fired(self) -> bool:
        """True once the complete callback was enqueued (it may still be running)."""
        return self.complete_state is not CallbackState.PENDING

    @property
    def success_fired(self) -> bool:
        """True once the success callback was enqueued (it may still be running)."""
        return self.success_state is not CallbackState.PENDING


@dataclass(frozen=True)
class JobTrack:
    """A job's progress as ``TRACK GET`` reports it (:meth:`werk.Client.track_get`).

    ``percent`` and ``desc`` are the last values the job reported (``None`` when absent:
    Faktory Enterprise omits a percent of 0 and an empty description); ``updated_at`` is
    when its record last changed (``None`` without a record, where ``state`` is
    ``UNKNOWN``). ``raw`` is the decoded JSON object.

    Example::

        track = client.track_get(jid)
        print(track.state.value, track.percent, track.desc)
    """

    jid: str
    state: TrackState = TrackState.UNKNOWN
    percent: int | None = None
    desc: str | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobTrack:
        """Read the JSON object of a ``TRACK GET`` reply.

        Example::

            >>> JobTrack.from_dict({"jid": "j1", "state": "unknown", "updated_at": ""}).state
            <TrackState.UNKNOWN: 'unknown'>
        """
        return cls(
            jid=_field(data, "jid", str, ""),
            state=_enum(TrackState, data, "state", "unknown"),
            percent=_field(data, "percent", int, None),
            desc=_field(data, "desc", str, None),
            updated_at=_time(data, "updated_at"),
            raw=dict(data),
        )

    @property
    def finished(self) -> bool:
        """True when the job will not run again: it succeeded or it is dead."""
        return self.state in (TrackState.SUCCESS, TrackState.DEAD)


def batch_status(reply: Reply, request: Request[Any]) -> BatchStatus:
    """Read a ``BATCH STATUS`` reply."""
    return BatchStatus.from_dict(json_object(reply, request))


def job_track(reply: Reply, request: Request[Any]) -> JobTrack:
    """Read a ``TRACK GET`` reply."""
    return JobTrack.from_dict(json_object(reply, request))

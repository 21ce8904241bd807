"""The requests behind the client's commands: each line built (and checked) here, paired
with the reader of its reply. Pure: nothing here touches a socket.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from werk._errors import JobValidationError, LocalProtocolError, NetworkError
from werk._job import Job, When, checked_job, enterprise_custom, plain_payload, wire_payload
from werk._protocol import command_lines
from werk._protocol.replies import (
    BeatState,
    Request,
    beat_state,
    fetched_job,
    json_object,
    latency,
    ok,
    pushed_jid,
    text,
)
from werk._protocol.resp import ErrorReply, Reply
from werk._protocol.timefmt import format_time
from werk.client._methods import Requests
from werk.client._mutation import Mutation

__all__ = [
    "BULK_CHUNK",
    "FLUSH",
    "INFO",
    "BulkPush",
    "batch_new",
    "beat",
    "fetch",
    "latency_of",
    "mutate",
    "push",
    "track_set",
]

BULK_CHUNK: Final = 1000
"""Jobs per PUSHB line (the server's documented recommendation)."""
# push()'s keyword options: the fields of a job besides its type and args.
_OPTIONS: Final = (
    "jid",
    "queue",
    "retry",
    "reserve_for",
    "at",
    "backtrace",
    "custom",
    "unique_for",
    "unique_until",
    "expires_in",
    "expires_at",
)
_NO_OPTIONS: Final = (None,) * len(_OPTIONS)
_NO_ENTERPRISE: Final = (None,) * 4

INFO: Final = Request(command_lines.info(), json_object)
FLUSH: Final = Request(command_lines.flush(), ok)


def push(
    job_or_jobtype: Job | str,
    args: Sequence[Any],
    jid: str | None,
    queue: str | None,
    retry: int | None,
    reserve_for: int | None,
    at: When | None,
    backtrace: int | None,
    custom: Mapping[str, Any] | None,
    unique_for: Any = None,
    unique_until: str | None = None,
    expires_in: Any = None,
    expires_at: Any = None,
) -> Request[str]:
    """PUSH for ``push(job)`` or ``push(jobtype, *args, **options)``.

    A jobtype with args is validated by the same rules as :class:`~werk.Job` without
    building one. Raises JobValidationError, naming the field.
    """
    if (
        jid is None
        and queue is None
        and retry is None
        and reserve_for is None
        and at is None
        and backtrace is None
        and custom is None
        and unique_for is None
        and unique_until is None
        and expires_in is None
        and expires_at is None
        and type(job_or_jobtype) is str
    ):
        job = plain_payload(job_or_jobtype, args)
        return Request(command_lines.push(job), pushed_jid, (job["jid"],))
    enterprise = (unique_for, unique_until, expires_in, expires_at)
    if isinstance(job_or_jobtype, str):
        if enterprise != _NO_ENTERPRISE:
            custom = enterprise_custom(custom, *enterprise)
        job = wire_payload(
            checked_job(
                job_or_jobtype,
                args,
                jid,
                "default" if queue is None else queue,
                retry,
                reserve_for,
                at,
                backtrace,
                custom,
            )
        )
    elif isinstance(job_or_jobtype, Job):
        options = (jid, queue, retry, reserve_for, at, backtrace, custom, *enterprise)
        if args or options != _NO_OPTIONS:
            given = [name for name, v in zip(_OPTIONS, options, strict=True) if v is not None]
            raise JobValidationError(
                "args" if args else given[0],
                "push(job) takes no other arguments: set them on the Job",
            )
        job = job_or_jobtype.to_dict()
    else:
        raise JobValidationError(
            "jobtype", f"needs a Job or a jobtype string, got {type(job_or_jobtype).__name__}"
        )
    return Request(command_lines.push(job), pushed_jid, (job["jid"],))


_PLAIN_ITEM: Final = frozenset(("jobtype", "args"))


def _bulk_item(item: Job | Mapping[str, Any]) -> dict[str, Any]:
    if type(item) is dict and item.keys() == _PLAIN_ITEM:  # the commonest item: no options
        return plain_payload(item["jobtype"], item["args"])
    if isinstance(item, Job):
        return item.to_dict()
    if isinstance(item, Mapping):
        fields = dict(item)
        jobtype = fields.pop("jobtype", None)
        args = fields.pop("args", ())
        unknown = set(fields).difference(_OPTIONS)
        if unknown:
            raise JobValidationError(sorted(unknown)[0], "is not a job field werk can send")
        custom = fields.get("custom")
        enterprise = tuple(fields.get(name) for name in _OPTIONS[7:])
        if enterprise != _NO_ENTERPRISE:
            custom = enterprise_custom(custom, *enterprise)
        return wire_payload(
            checked_job(
                jobtype,
                args,
                fields.get("jid"),
                fields.get("queue", "default"),
                fields.get("retry"),
                fields.get("reserve_for"),
                fields.get("at"),
                fields.get("backtrace"),
                custom,
            )
        )
    raise _not_jobs(item)


def _not_jobs(value: object) -> JobValidationError:
    return JobValidationError("jobs", f"push_bulk() takes Jobs or mappings, got {value!r:.80}")


class _Chunk(Request[None]):
    """One PUSHB line; a network failure also says which jobs earlier chunks stored."""

    __slots__ = ("bulk", "earlier")

    def __init__(self, line: bytes, bulk: BulkPush, jids: Sequence[str]) -> None:
        super().__init__(line, bulk.settle, jids)
        self.bulk = bulk
        self.earlier = len(bulk.pushed)  # the jobs of earlier chunks the server stored

    def failed(self, error: NetworkError, sent: bool) -> NetworkError:
        error = super().failed(error, sent)
        error.pushed_jids = tuple(self.bulk.pushed[: self.earlier])
        return error


class BulkPush(Requests[dict[str, str]]):
    """PUSHB, :data:`BULK_CHUNK` jobs per line, each line sent once the previous one is
    answered. Every job is validated first: nothing is sent if one is bad. ``result`` maps
    the jid of each rejected job to the reason (an error reply to a whole line rejects each
    of its jobs; a unique job's duplicate is ``"NOTUNIQUE Job not unique"``)."""

    def __init__(self, jobs: Iterable[Job | Mapping[str, Any]]) -> None:
        if not isinstance(jobs, Iterable) or isinstance(jobs, (str, bytes, Mapping)):
            raise _not_jobs(jobs)
        # A Job's payload without the call to _bulk_item (the commonest item).
        payloads = [job.to_dict() if type(job) is Job else _bulk_item(job) for job in jobs]
        self.chunks = [
            ([job["jid"] for job in part], command_lines.pushb(part))
            for part in (payloads[n : n + BULK_CHUNK] for n in range(0, len(payloads), BULK_CHUNK))
        ]
        self.result: dict[str, str] = {}
        self.pushed: list[str] = []

    def __iter__(self) -> Iterator[Request[Any]]:
        for jids, line in self.chunks:
            yield _Chunk(line, self, jids)

    def settle(self, reply: Reply, request: Request[None]) -> None:
        """Read one line's reply: ``{jid: error}`` for the jobs the server rejected."""
        if type(reply) is ErrorReply:
            rejected = dict.fromkeys(request.jids, str(reply.to_exception()))
        else:
            rejected = {str(k): str(v) for k, v in json_object(reply, request).items()}
        if rejected:
            self.result.update(rejected)
            self.pushed.extend(jid for jid in request.jids if jid not in rejected)
        else:
            self.pushed.extend(request.jids)


@functools.lru_cache(maxsize=256)
def _fetch(queues: tuple[str, ...]) -> Request[Job | None]:
    return Request(command_lines.fetch(queues or ("default",)), fetched_job, blocking=True)


def fetch(queues: tuple[str, ...]) -> Request[Job | None]:
    """``FETCH q1 q2 ...``; no queues means ``default``. Workers fetch the same queues over
    and over, so each request is built and checked once."""
    try:
        return _fetch(queues)
    except TypeError:  # an unhashable "queue": let the line builder say what is wrong
        return Request(command_lines.fetch(queues), fetched_job, blocking=True)


def beat(wid: str, current_state: str | None, rss_kb: int | None) -> Request[BeatState | None]:
    """BEAT; ``current_state`` is None (running), ``"quiet"`` or ``"terminate"``."""
    if current_state not in (None, "", "quiet", "terminate"):
        raise LocalProtocolError(
            f"current_state must be None, 'quiet' or 'terminate', got {current_state!r}"
        )
    if rss_kb is not None and (not isinstance(rss_kb, int) or isinstance(rss_kb, bool)):
        raise LocalProtocolError(f"rss_kb must be an int, got {rss_kb!r}")
    return Request(command_lines.beat(wid, current_state or None, rss_kb), beat_state)


def latency_of(queues: Sequence[str]) -> Request[dict[str, float]]:
    """``QUEUE LATENCY q ...`` (no ``*``: the server does not support it there)."""
    if "*" in queues:
        raise LocalProtocolError("QUEUE LATENCY does not support '*': name the queues")
    return Request(command_lines.queue("LATENCY", queues), latency)


def mutate(mutation: Mutation) -> Request[None]:
    """MUTATE for a :class:`~werk.Mutation`."""
    if not isinstance(mutation, Mutation):
        raise LocalProtocolError(
            "mutate() takes a werk.Mutation, e.g. Mutation.kill(Target.RETRIES).jobtype('X')"
        )
    return Request(command_lines.mutate(mutation.to_dict()), ok)


def batch_new(
    success: Job | None, complete: Job | None, description: str | None, parent_bid: str | None
) -> Request[str]:
    """``BATCH NEW {...}`` (Enterprise)."""
    batch: dict[str, Any] = {"bid": ""}
    if parent_bid:
        batch["parent_bid"] = parent_bid
    if description:
        batch["description"] = description
    for name, job in (("success", success), ("complete", complete)):
        if job is not None:
            if not isinstance(job, Job):
                raise JobValidationError(name, f"must be a werk.Job, got {job!r:.80}")
            batch[name] = job.to_dict()
    return Request(command_lines.batch_new(batch), text)


def track_set(
    jid: str, percent: int | None, description: str | None, reserve_until: Any
) -> Request[None]:
    """``TRACK SET {...}`` (Enterprise); ``reserve_until`` is an aware datetime or RFC3339."""
    job: dict[str, Any] = {"jid": jid}
    if percent is not None:
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise LocalProtocolError(f"percent must be an int in 0..100, got {percent!r}")
        job["percent"] = percent
    if description is not None:
        job["desc"] = description
    if isinstance(reserve_until, datetime):
        job["reserve_until"] = format_time(reserve_until)
    elif isinstance(reserve_until, str):
        job["reserve_until"] = reserve_until
    elif reserve_until is not None:
        raise LocalProtocolError(
            f"reserve_until must be a datetime or an RFC3339 string, got {reserve_until!r:.80}"
        )
    return Request(command_lines.track_set(job), ok)

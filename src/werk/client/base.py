"""Everything the sync and asyncio clients share: settings, requests, and reading replies.

Both clients are "one design, two I/O flavours": every public method builds its command
line here (pure), lets its I/O layer send it and read one reply, and hands that reply back
here to become a value or a typed error. Nothing in this module touches a socket.

Example::

    >>> jid, line = push_request("Resize", (42,), {"jid": "0123456789abcdef"})
    >>> line
    b'PUSH {"jid":"0123456789abcdef","jobtype":"Resize","args":[42],"retry":25}\\r\\n'
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, Literal

from werk.client.config import Endpoint, parse_url, resolve_url, ssl_context_for
from werk.client.mutate import Mutation
from werk.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    JobValidationError,
    LocalProtocolError,
    NetworkError,
    RemoteProtocolError,
    ServerError,
    ShutdownInProgressError,
)
from werk.job import Job, job_payload
from werk.protocol import commands
from werk.protocol.handshake import hello_payload, parse_greeting
from werk.protocol.jsonc import loads
from werk.protocol.resp import ErrorReply, Reply
from werk.protocol.timefmt import format_time

__all__ = [
    "BULK_CHUNK",
    "DEFAULT_TIMEOUT",
    "FETCH_BLOCK",
    "BeatState",
    "ClientSettings",
    "beat_state",
    "expect_ok",
    "fail_request",
    "fetched_job",
    "fetched_payload",
    "json_reply",
    "latency_reply",
    "push_request",
    "pushb_requests",
    "string_reply",
]

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds allowed to connect, to write a command, and to wait for its reply."""
FETCH_BLOCK: Final = 2.0
"""How long the server may hold a FETCH open before answering ``$-1``."""
BULK_CHUNK: Final = 1000
"""Jobs per PUSHB line (the server's documented recommendation)."""
MAX_BACKTRACE: Final = 50
_MAX_ERRTYPE_BYTES: Final = 100
_MAX_MESSAGE_BYTES: Final = 1000

BeatState = Literal["quiet", "terminate"]

_PUSH_OPTIONS: Final = frozenset(
    ("jid", "queue", "retry", "reserve_for", "at", "backtrace", "custom")
)


class ClientSettings:
    """The resolved settings of one client (shared by every connection it opens).

    Example::

        >>> s = ClientSettings("tcp://:pw@localhost", wid=None, hostname="h")
        >>> (s.endpoint.port, s.endpoint.password, s.wid)
        (7419, 'pw', None)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        password: str | None = None,
        wid: str | None = None,
        labels: Iterable[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        hostname: str | None = None,
    ) -> None:
        endpoint = parse_url(resolve_url(url))
        if password is not None:
            endpoint = replace(endpoint, password=password)
        if wid is not None and (not isinstance(wid, str) or not wid or " " in wid):
            raise ConfigurationError(f"wid must be a non-empty word, got {wid!r}")
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        if connect_timeout is not None and not connect_timeout > 0:
            raise ConfigurationError(f"connect_timeout must be > 0, got {connect_timeout!r}")
        self.endpoint: Endpoint = endpoint
        self.ssl_context = ssl_context_for(endpoint, ssl_context)
        self.wid = wid
        # The server decodes HELLO into typed fields and silently hangs up on a mismatch
        # (labels must be an array of strings, hostname a string): refuse such values here.
        if isinstance(labels, (str, bytes)):
            raise ConfigurationError(f"labels must be a list of strings, not {labels!r}")
        self.labels: tuple[str, ...] = tuple(labels)
        if not all(isinstance(label, str) for label in self.labels):
            raise ConfigurationError(f"labels must be strings, got {self.labels!r}")
        if hostname is not None and not isinstance(hostname, str):
            raise ConfigurationError(f"hostname must be a string, got {hostname!r}")
        self.hostname = hostname or socket.gethostname()
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout or timeout)
        self.fetch_timeout = self.timeout + FETCH_BLOCK

    def hello_line(self, greeting: Reply) -> bytes:
        """The ``HELLO`` line answering the server's greeting (raises on a bad greeting)."""
        if isinstance(greeting, ErrorReply):
            # Not what a Faktory server sends first (it refuses admission only after +OK,
            # see refused_admission), but an error line is still the clearest report.
            raise greeting.to_exception()
        payload = hello_payload(
            parse_greeting(greeting),
            password=self.endpoint.password,
            wid=self.wid,
            hostname=self.hostname,
            pid=os.getpid(),
            labels=self.labels,
            username=self.endpoint.username,
        )
        return commands.hello(payload)

    def require_wid(self) -> str:
        """The worker id, or ConfigurationError: BEAT is for worker processes."""
        if not self.wid:
            raise ConfigurationError("beat() needs a worker id: create the client with wid=...")
        return self.wid


# -- replies ------------------------------------------------------------------------------


def closes_connection(error: ServerError) -> bool:
    """True for the error replies after which the server closes the socket."""
    return isinstance(error, (AuthenticationError, ShutdownInProgressError)) or (
        error.message.startswith("too many connections")
    )


def refused_admission(error: ServerError) -> ConnectError | None:
    """The ConnectError for ``-ERR too many connections: N``, else None.

    Faktory (1.9+) answers a HELLO beyond its connection limit with ``+OK`` and then, before
    reading any command, writes that error and hangs up. So it arrives as the reply to the
    first command, which the server never ran: this is a refused connection (retry later),
    not the command's failure.

    Example::

        >>> refused_admission(ServerError("ERR", "too many connections: 2001")).command_sent
        False
    """
    if error.code != "ERR" or not error.message.startswith("too many connections"):
        return None
    exc = ConnectError(
        f"the server refused the connection ({error.message}); the command was not run"
    )
    exc.__cause__ = error
    return exc


def unexpected(reply: Reply, what: str) -> Exception:
    """The exception for a reply that is not what ``what`` answers: the server's error, or
    a RemoteProtocolError when the server said something that makes no sense here."""
    if isinstance(reply, ErrorReply):
        return reply.to_exception()
    return RemoteProtocolError(f"unexpected reply to {what}: {reply!r}")


def expect_ok(reply: Reply, what: str) -> None:
    """``+OK`` (simple or bulk) or raise."""
    if reply == "OK" or reply == b"OK":
        return
    raise unexpected(reply, what)


def json_reply(reply: Reply, what: str) -> Any:
    """Decode a JSON reply (bulk or simple string) or raise."""
    if isinstance(reply, (bytes, str)):
        try:
            return loads(reply)
        except ValueError:
            raise RemoteProtocolError(f"{what} replied with invalid JSON: {reply!r:.200}") from None
    raise unexpected(reply, what)


def string_reply(reply: Reply, what: str) -> str:
    """A reply that carries a plain string (e.g. a batch id), simple or bulk."""
    if isinstance(reply, str):
        return reply
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    raise unexpected(reply, what)


def fetched_payload(reply: Reply) -> dict[str, Any] | None:
    """FETCH's reply as the job's JSON object, or None for ``$-1`` (error replies raise).

    Example::

        >>> fetched_payload(b'{"jid":"0123456789abcdef","jobtype":"T","args":[]}')["jobtype"]
        'T'
    """
    if reply is None:
        return None
    data = json_reply(reply, "FETCH")
    if not isinstance(data, dict) or not isinstance(data.get("jid"), str):
        raise RemoteProtocolError(f"FETCH returned something that is not a job: {reply!r:.200}")
    return data


def fetched_job(reply: Reply) -> Job | None:
    """FETCH's reply: a job, or None for ``$-1``."""
    data = fetched_payload(reply)
    if data is None:
        return None
    try:
        return Job.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RemoteProtocolError(f"FETCH returned a malformed job: {exc}") from None


def beat_state(reply: Reply) -> BeatState | None:
    """BEAT's reply: None while running, else ``"quiet"`` or ``"terminate"``."""
    if reply == "OK" or reply == b"OK":
        return None
    data = json_reply(reply, "BEAT")
    state = data.get("state") if isinstance(data, dict) else None
    if state == "quiet":
        return "quiet"
    if state == "terminate":
        return "terminate"
    raise RemoteProtocolError(f"unexpected BEAT reply: {reply!r}")


def latency_reply(reply: Reply) -> dict[str, float]:
    """QUEUE LATENCY's reply: queue name -> seconds."""
    data = json_reply(reply, "QUEUE LATENCY")
    if not isinstance(data, dict):
        raise RemoteProtocolError(f"unexpected QUEUE LATENCY reply: {reply!r}")
    return {str(k): float(v) for k, v in data.items()}


def dict_reply(reply: Reply, what: str) -> dict[str, Any]:
    """A JSON object reply (INFO, BATCH STATUS, TRACK GET)."""
    data = json_reply(reply, what)
    if not isinstance(data, dict):
        raise RemoteProtocolError(f"{what} replied with JSON that is not an object: {reply!r:.200}")
    return data


# -- requests -----------------------------------------------------------------------------


def push_request(
    job_or_jobtype: Job | str, args: Sequence[Any], options: Mapping[str, Any]
) -> tuple[str, bytes]:
    """``(jid, PUSH line)`` for ``push(job)`` or ``push(jobtype, *args, **options)``.

    A jobtype with args is validated by the same rules as :class:`~werk.job.Job` without
    building one. Raises JobValidationError (naming the field) or TypeError.
    """
    if isinstance(job_or_jobtype, str):
        if options and not _PUSH_OPTIONS.issuperset(options):
            bad = ", ".join(sorted(set(options) - _PUSH_OPTIONS))
            raise TypeError(f"push() got unknown job option(s): {bad}")
        payload = job_payload(job_or_jobtype, args, **options)
    elif isinstance(job_or_jobtype, Job):
        if args or options:
            raise TypeError("push(job) takes no further arguments; set them on the Job")
        payload = job_or_jobtype.to_dict()
    else:
        raise JobValidationError(
            "jobtype", f"needs a Job or a jobtype string, got {type(job_or_jobtype).__name__}"
        )
    return payload["jid"], commands.push(payload)


def _bulk_item(item: Job | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item, Job):
        return item.to_dict()
    if isinstance(item, Mapping):
        fields = dict(item)
        jobtype = fields.pop("jobtype", None)
        args = fields.pop("args", ())
        unknown = set(fields) - _PUSH_OPTIONS
        if unknown:
            raise JobValidationError(sorted(unknown)[0], "is not a job field werk can send")
        return job_payload(jobtype, args, **fields)
    raise JobValidationError("jobtype", f"push_bulk() takes Jobs or mappings, got {item!r:.80}")


def pushb_requests(jobs: Iterable[Job | Mapping[str, Any]]) -> list[tuple[list[str], bytes]]:
    """Validate every job first (nothing is sent if one is bad), then one PUSHB per chunk.

    Returns ``[(jids_in_chunk, line), ...]``.
    """
    payloads = [_bulk_item(j) for j in jobs]
    chunks = []
    for start in range(0, len(payloads), BULK_CHUNK):
        part = payloads[start : start + BULK_CHUNK]
        chunks.append(([p["jid"] for p in part], commands.pushb(part)))
    return chunks


def pushb_reply(reply: Reply) -> dict[str, str]:
    """PUSHB's reply: jid -> error for the rejected jobs (``{}`` when all were stored)."""
    data = json_reply(reply, "PUSHB")
    if not isinstance(data, dict):
        raise RemoteProtocolError(f"unexpected PUSHB reply: {reply!r:.200}")
    return {str(k): str(v) for k, v in data.items()}


@functools.lru_cache(maxsize=256)
def _fetch_line(queues: tuple[str, ...]) -> bytes:
    return commands.fetch(queues or ("default",))


def fetch_request(queues: Sequence[str]) -> bytes:
    """``FETCH q1 q2 ...``; no queues means ``default``.

    Workers fetch the same queues over and over, so the checked line is cached.
    """
    return _fetch_line(tuple(queues))


def _clip(text: str, limit: int) -> str:
    # The server cuts at a byte count, possibly inside a UTF-8 sequence; cut cleanly here.
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def backtrace_lines(exc: BaseException, limit: int | None = None) -> list[str]:
    """One line per traceback frame, innermost first, at most ``limit`` (default 50).

    Example::

        lines = backtrace_lines(exc, job.backtrace)
        # ['File "app.py", line 12, in resize', 'File "app.py", line 3, in run']
    """
    cap = MAX_BACKTRACE if not limit or limit <= 0 else min(limit, MAX_BACKTRACE)
    frames = traceback.extract_tb(exc.__traceback__)
    frames.reverse()
    return [f'File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames[:cap]]


def fail_request(
    job_or_jid: Job | str,
    exc_or_message: BaseException | str,
    errtype: str | None = None,
    backtrace: Sequence[str] | int | None = None,
) -> bytes:
    """The FAIL line for a job that raised ``exc`` (or failed with a message).

    ``errtype`` defaults to the exception's class name (``"Error"`` for a message);
    ``backtrace`` is a list of lines to send, or an int capping the lines taken from the
    exception's traceback (default: the job's ``backtrace`` field when a Job is given, else 50).
    """
    if isinstance(job_or_jid, Job):
        jid = job_or_jid.jid
        limit = job_or_jid.backtrace
    else:
        jid = job_or_jid
        limit = None
    if not isinstance(jid, str) or not jid:
        raise LocalProtocolError("FAIL needs the jid of the failed job")
    if isinstance(exc_or_message, BaseException):
        message = str(exc_or_message) or repr(exc_or_message)
        kind = errtype or type(exc_or_message).__name__
        if isinstance(backtrace, int):
            limit = backtrace
        if backtrace is None or isinstance(backtrace, int):
            lines = backtrace_lines(exc_or_message, limit)
        else:
            lines = list(backtrace)
    else:
        message = str(exc_or_message)
        kind = errtype or "Error"
        lines = [] if backtrace is None or isinstance(backtrace, int) else list(backtrace)
    if len(lines) > MAX_BACKTRACE:
        lines = lines[:MAX_BACKTRACE]
    return commands.fail(
        jid, _clip(kind, _MAX_ERRTYPE_BYTES), _clip(message, _MAX_MESSAGE_BYTES), lines
    )


def beat_request(wid: str, current_state: str | None, rss_kb: int | None) -> bytes:
    """The BEAT line; ``current_state`` is None (running), ``"quiet"`` or ``"terminate"``."""
    if current_state not in (None, "", "quiet", "terminate"):
        raise LocalProtocolError(
            f"current_state must be None, 'quiet' or 'terminate', got {current_state!r}"
        )
    if rss_kb is not None and (not isinstance(rss_kb, int) or isinstance(rss_kb, bool)):
        raise LocalProtocolError(f"rss_kb must be an int, got {rss_kb!r}")
    return commands.beat(wid, current_state or None, rss_kb)


def latency_request(queues: Sequence[str]) -> bytes:
    """``QUEUE LATENCY q ...`` (no ``*``: the server does not support it there)."""
    if "*" in queues:
        raise LocalProtocolError("QUEUE LATENCY does not support '*': name the queues")
    return commands.queue("LATENCY", queues)


def mutate_request(mutation: Mutation) -> bytes:
    """The MUTATE line for a :class:`~werk.client.mutate.Mutation`."""
    if not isinstance(mutation, Mutation):
        raise LocalProtocolError(
            "mutate() takes a werk.Mutation, e.g. Mutation.kill(Target.RETRIES).jobtype('X')"
        )
    return commands.mutate(mutation.to_dict())


def batch_new_request(
    *,
    success: Job | None = None,
    complete: Job | None = None,
    description: str | None = None,
    parent_bid: str | None = None,
) -> bytes:
    """``BATCH NEW {...}`` (Enterprise)."""
    batch: dict[str, Any] = {"bid": ""}
    if parent_bid:
        batch["parent_bid"] = parent_bid
    if description:
        batch["description"] = description
    if success is not None:
        batch["success"] = success.to_dict()
    if complete is not None:
        batch["complete"] = complete.to_dict()
    return commands.batch_new(batch)


def track_set_request(
    jid: str,
    *,
    percent: int | None = None,
    description: str | None = None,
    reserve_until: Any = None,
) -> bytes:
    """``TRACK SET {...}`` (Enterprise); ``reserve_until`` is an aware datetime or RFC3339."""
    payload: dict[str, Any] = {"jid": jid}
    if percent is not None:
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise LocalProtocolError(f"percent must be an int in 0..100, got {percent!r}")
        payload["percent"] = percent
    if description is not None:
        payload["desc"] = description
    if reserve_until is not None:
        payload["reserve_until"] = (
            reserve_until if isinstance(reserve_until, str) else format_time(reserve_until)
        )
    return commands.track_set(payload)


def network_error(
    error: NetworkError, *, sent: bool, jids: Sequence[str] = (), pushed: Sequence[str] = ()
) -> NetworkError:
    """Annotate a NetworkError with what may have happened to the command (see its docs)."""
    error.command_sent = sent
    if jids and sent:
        error.unknown_jids = tuple(jids)
        error.args = (
            f"{error.args[0] if error.args else error}; the server may have stored "
            f"{len(jids)} job(s) before the failure (jid {jids[0]}"
            f"{', ...' if len(jids) > 1 else ''}): check before pushing again",
        )
    elif jids:
        error.args = (f"{error.args[0] if error.args else error}; nothing was sent",)
    if pushed:
        error.pushed_jids = tuple(pushed)
    return error

"""Job payloads and command arguments, decoded and encoded exactly as the real server does.

The reference server decodes a job into a fixed Go struct and re-encodes it: unknown keys
disappear, keys come out in the struct's order (``retry, failure, custom, jid, queue,
jobtype, created_at, enqueued_at, at, args, reserve_for, backtrace``), empty optional
fields are omitted, nested objects come back with sorted keys, and a value of the wrong
JSON type rejects the command with Go's text. :class:`JobCodec` reproduces all of it.

Example::

    >>> codec = JobCodec()
    >>> job = codec.decode_job(b'{"jid":"0123456789","jobtype":"T","args":[2.0],"x":1}')
    >>> codec.encode(job)
    b'{"retry":null,"jid":"0123456789","queue":"","jobtype":"T","args":[2]}'
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

from werk.server.gojson import GoDecoder, GoJSONError, go_bytes, go_dumps_text

__all__ = [
    "CommandArgumentError",
    "JobCodec",
    "Operation",
    "parse_ack",
    "parse_beat",
    "parse_fail",
]

Job = dict[str, Any]

_INT64 = 2**63


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "number"


def _type_error(value: object, path: str, gotype: str) -> GoJSONError:
    kind = _kind(value)
    if kind == "number" and gotype == "int":
        literal = getattr(value, "literal", None) or repr(value)
        kind = f"number {literal}"
    return GoJSONError(
        f"json: cannot unmarshal {kind} into Go struct field {path} of type {gotype}"
    )


def _is_go_int(value: object) -> bool:
    return type(value) is int and -_INT64 <= value < _INT64


_STRING, _INT = "string", "int"
_JOB_FIELDS: dict[str, str] = {
    "jid": _STRING,
    "queue": _STRING,
    "jobtype": _STRING,
    "created_at": _STRING,
    "enqueued_at": _STRING,
    "at": _STRING,
    "args": "[]interface {}",
    "retry": _INT,
    "reserve_for": _INT,
    "backtrace": _INT,
    "custom": "map[string]interface {}",
    "failure": "client.Failure",
}
_FAILURE_FIELDS: dict[str, str] = {
    "failed_at": _STRING,
    "next_at": _STRING,
    "message": _STRING,
    "errtype": _STRING,
    "backtrace": "[]string",
    "retry_count": _INT,
    "remaining": _INT,
}


def _check_field(value: Any, path: str, gotype: str) -> Any:
    """Return ``value`` if Go would store it in a field of ``gotype``; raise otherwise."""
    if value is None:
        return None
    if gotype == _STRING:
        ok = isinstance(value, str)
    elif gotype == _INT:
        ok = _is_go_int(value)
    elif gotype == "[]interface {}":
        ok = isinstance(value, list)
    elif gotype == "map[string]interface {}":
        ok = isinstance(value, dict)
    elif gotype == "[]string":
        if not isinstance(value, list):
            raise _type_error(value, path, gotype)
        for item in value:
            if item is not None and not isinstance(item, str):
                raise _type_error(item, path, "string")
        return [item or "" for item in value]
    else:  # client.Failure
        if not isinstance(value, dict):
            raise _type_error(value, path, gotype)
        failure: dict[str, Any] = {}
        for key, item in value.items():
            sub = _FAILURE_FIELDS.get(key)
            if sub is not None:
                failure[key] = _check_field(item, f"{path}.{key}", sub)
        return failure
    if not ok:
        raise _type_error(value, path, gotype)
    return value


def _enc_failure(f: dict[str, Any]) -> str:
    parts = ['{"failed_at":', encode_basestring(f.get("failed_at") or "")]
    for key in ("next_at", "message", "errtype"):
        text = f.get(key)
        if text:
            parts += [',"', key, '":', encode_basestring(text)]
    if f.get("backtrace"):
        parts += [',"backtrace":', go_dumps_text(f["backtrace"])]
    parts += [',"retry_count":', str(f.get("retry_count") or 0)]
    parts += [',"remaining":', str(f.get("remaining") or 0), "}"]
    return "".join(parts)


class JobCodec:
    """Decode, type-check and canonically encode jobs (one instance per server).

    Example::

        >>> JobCodec().decode_job(b'{"jid":1}')
        Traceback (most recent call last):
        ...
        werk.server.gojson.GoJSONError: json: cannot unmarshal number into Go struct field ...
    """

    __slots__ = ("_loads",)

    def __init__(self) -> None:
        self._loads = GoDecoder().loads

    def loads(self, data: bytes) -> Any:
        """Decode any JSON the Go way (see :class:`~werk.server.gojson.GoDecoder`)."""
        return self._loads(data)

    def decode_job(self, data: bytes) -> Job:
        """Decode one job (PUSH); GoJSONError carries Go's message."""
        return self.check_job(self._loads(data), "Job", "client.Job")

    def decode_jobs(self, data: bytes) -> list[Job]:
        """Decode a job array (PUSHB); any type error rejects the whole array, as in Go."""
        value = self._loads(data)
        if value is None:
            return []
        if not isinstance(value, list):
            raise GoJSONError(
                f"json: cannot unmarshal {_kind(value)} into Go value of type []client.Job"
            )
        return [
            self.check_job(item, f".{i}", "client.Job", top=False) for i, item in enumerate(value)
        ]

    @staticmethod
    def check_job(value: Any, path: str, gotype: str, top: bool = True) -> Job:
        """Type-check a decoded job object and keep only the struct's fields."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            if top:
                raise GoJSONError(
                    f"json: cannot unmarshal {_kind(value)} into Go value of type {gotype}"
                )
            kind = _kind(value)
            raise GoJSONError(
                f"json: cannot unmarshal {kind} into Go struct field {path} of type {gotype}"
            )
        job: Job = {}
        fields = _JOB_FIELDS
        for key, item in value.items():
            gotype_field = fields.get(key)
            if gotype_field is not None:
                job[key] = _check_field(item, f"{path}.{key}", gotype_field)
        return job

    @staticmethod
    def encode(job: Job) -> bytes:
        """The job's canonical bytes, as Go's ``json.Marshal`` writes the struct."""
        retry = job.get("retry")
        parts = ['{"retry":', "null" if retry is None else str(retry)]
        failure = job.get("failure")
        if failure is not None:
            parts += [',"failure":', _enc_failure(failure)]
        custom = job.get("custom")
        if custom:
            parts += [',"custom":', go_dumps_text(custom)]
        parts += [
            ',"jid":',
            encode_basestring(job.get("jid") or ""),
            ',"queue":',
            encode_basestring(job.get("queue") or ""),
            ',"jobtype":',
            encode_basestring(job.get("jobtype") or ""),
        ]
        for key in ("created_at", "enqueued_at", "at"):
            text = job.get(key)
            if text:
                parts += [',"', key, '":', encode_basestring(text)]
        args = job.get("args")
        parts += [',"args":', "null" if args is None else go_dumps_text(args)]
        for key in ("reserve_for", "backtrace"):
            number = job.get(key)
            if number:
                parts += [',"', key, '":', str(number)]
        parts.append("}")
        return go_bytes("".join(parts))


class CommandArgumentError(ValueError):
    """The argument of ACK, FAIL or BEAT does not decode into the server's struct."""


# ACK, FAIL and BEAT arguments: anything that Go would not decode into the command's struct
# is one error ("invalid ACK ..."), so every failure becomes CommandArgumentError.
_Loads = GoDecoder | JobCodec


def _object(decode: _Loads, data: bytes) -> dict[str, Any]:
    try:
        value = decode.loads(data)
    except GoJSONError:
        raise CommandArgumentError from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CommandArgumentError
    return value


def _struct(decode: _Loads, data: bytes, fields: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in _object(decode, data).items():
        gotype = fields.get(key)
        if gotype is not None:
            try:
                out[key] = _check_field(item, key, gotype)
            except GoJSONError:
                raise CommandArgumentError from None
    return out


def parse_ack(decode: _Loads, data: bytes) -> str:
    """The jid of ``ACK {"jid":...}``; CommandArgumentError unless a string map with ``jid``.

    Example::

        >>> parse_ack(GoDecoder(), b'{"jid":"0123456789","note":null}')
        '0123456789'
    """
    value = _object(decode, data)
    for item in value.values():
        if item is not None and not isinstance(item, str):
            raise CommandArgumentError
    if "jid" not in value:
        raise CommandArgumentError
    return value["jid"] or ""


_FAIL_FIELDS = {"jid": _STRING, "message": _STRING, "errtype": _STRING, "backtrace": "[]string"}
_BEAT_FIELDS = {"wid": _STRING, "current_state": _STRING, "rss_kb": _INT}


def parse_fail(decode: _Loads, data: bytes) -> dict[str, Any]:
    """The FAIL payload (``jid``, ``message``, ``errtype``, ``backtrace``) as Go decodes it."""
    return _struct(decode, data, _FAIL_FIELDS)


def parse_beat(decode: _Loads, data: bytes) -> dict[str, Any]:
    """The BEAT payload (``wid``, ``current_state``, ``rss_kb``) as Go decodes it."""
    return _struct(decode, data, _BEAT_FIELDS)


class Operation:
    """A decoded MUTATE operation: ``cmd``, ``target`` and an optional filter.

    Example::

        >>> op = Operation.decode(GoDecoder(), b'{"cmd":"kill","target":"dead","filter":{}}')
        >>> op.cmd, op.target, op.jids
        ('kill', 'dead', [])
    """

    __slots__ = ("cmd", "has_filter", "jids", "jobtype", "regexp", "target")

    def __init__(self) -> None:
        self.cmd = ""
        self.target = ""
        self.has_filter = False
        self.jids: list[str] = []
        self.regexp = ""
        self.jobtype = ""

    @classmethod
    def decode(cls, decode: _Loads, data: bytes) -> Operation:
        """Decode the MUTATE argument; GoJSONError carries Go's text (no prefix)."""
        value = decode.loads(data)
        op = cls()
        if value is None:
            return op
        if not isinstance(value, dict):
            raise GoJSONError(
                f"json: cannot unmarshal {_kind(value)} into Go value of type client.Operation"
            )
        for key, item in value.items():
            if key in ("cmd", "target"):
                setattr(op, key, _check_field(item, f"Operation.{key}", _STRING) or "")
            elif key == "filter" and item is not None:
                if not isinstance(item, dict):
                    raise _type_error(item, "Operation.filter", "client.JobFilter")
                op.has_filter = True
                for fkey, fitem in item.items():
                    path = f"Operation.filter.{fkey}"
                    if fkey == "jids":
                        op.jids = _check_field(fitem, path, "[]string") or []
                    elif fkey in ("regexp", "jobtype"):
                        setattr(op, fkey, _check_field(fitem, path, _STRING) or "")
        return op

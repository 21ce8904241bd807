"""Job payloads, decoded and encoded exactly as the real server does.

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

from werk.server._gojson import GoDecoder, GoJSONError, go_bytes, go_dumps_text

__all__ = ["INT", "STRING", "JobCodec", "Payload", "check_field", "json_kind", "type_error"]

Payload = dict[str, Any]
"""A decoded job as the server holds it: a dict of the Go struct's fields (not ``werk.Job``)."""

_INT64 = 2**63


def json_kind(value: object) -> str:
    """The JSON type name Go's decoder uses in its errors (``string``, ``number``...)."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "number"


def type_error(value: object, path: str, gotype: str) -> GoJSONError:
    """Go's "cannot unmarshal X into Go struct field P of type T" error."""
    kind = json_kind(value)
    if kind == "number" and gotype == "int":
        literal = getattr(value, "literal", None) or repr(value)
        kind = f"number {literal}"
    return GoJSONError(
        f"json: cannot unmarshal {kind} into Go struct field {path} of type {gotype}"
    )


def _is_go_int(value: object) -> bool:
    return type(value) is int and -_INT64 <= value < _INT64


STRING, INT = "string", "int"
_ARRAY = "[]interface {}"
_JOB_FIELDS: dict[str, str] = {
    "jid": STRING,
    "queue": STRING,
    "jobtype": STRING,
    "created_at": STRING,
    "enqueued_at": STRING,
    "at": STRING,
    "args": _ARRAY,
    "retry": INT,
    "reserve_for": INT,
    "backtrace": INT,
    "custom": "map[string]interface {}",
    "failure": "client.Failure",
}
_FAILURE_FIELDS: dict[str, str] = {
    "failed_at": STRING,
    "next_at": STRING,
    "message": STRING,
    "errtype": STRING,
    "backtrace": "[]string",
    "retry_count": INT,
    "remaining": INT,
}


def check_field(value: Any, path: str, gotype: str) -> Any:
    """Return ``value`` if Go would store it in a field of ``gotype``; raise otherwise."""
    if value is None:
        return None
    if gotype == STRING:
        ok = isinstance(value, str)
    elif gotype == INT:
        ok = _is_go_int(value)
    elif gotype == "[]interface {}":
        ok = isinstance(value, list)
    elif gotype == "map[string]interface {}":
        ok = isinstance(value, dict)
    elif gotype == "[]string":
        if not isinstance(value, list):
            raise type_error(value, path, gotype)
        for item in value:
            if item is not None and not isinstance(item, str):
                raise type_error(item, path, "string")
        return [item or "" for item in value]
    else:  # client.Failure
        if not isinstance(value, dict):
            raise type_error(value, path, gotype)
        failure: dict[str, Any] = {}
        for key, item in value.items():
            sub = _FAILURE_FIELDS.get(key)
            if sub is not None:
                failure[key] = check_field(item, f"{path}.{key}", sub)
        return failure
    if not ok:
        raise type_error(value, path, gotype)
    return value


_quote = encode_basestring
_RETRY = '"retry":'
_FAILURE = ',"failure":'
_CUSTOM = ',"custom":'
_JID = ',"jid":'
_QUEUE = ',"queue":'
_JOBTYPE = ',"jobtype":'
_CREATED = ',"created_at":'
_ENQUEUED = ',"enqueued_at":'
_AT = ',"at":'
_ARGS = ',"args":'
_RESERVE_FOR = ',"reserve_for":'
_BACKTRACE = ',"backtrace":'
_BACKSLASH = "\\"


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
    """Decode, type-check and canonically encode jobs (one instance per server)."""

    __slots__ = ("_loads",)

    def __init__(self) -> None:
        self._loads = GoDecoder().loads

    def loads(self, data: bytes) -> Any:
        """Decode any JSON the Go way (see :class:`~werk.server._gojson.GoDecoder`)."""
        return self._loads(data)

    def decode_job(self, data: bytes) -> Payload:
        """Decode one job (PUSH); GoJSONError carries Go's message."""
        return self.check_job(self._loads(data), "Job", "client.Job")

    def decode_jobs(self, data: bytes) -> list[Payload]:
        """Decode a job array (PUSHB); any type error rejects the whole array, as in Go."""
        value = self._loads(data)
        if value is None:
            return []
        if not isinstance(value, list):
            raise GoJSONError(
                f"json: cannot unmarshal {json_kind(value)} into Go value of type []client.Job"
            )
        return [
            self.check_job(item, f".{i}", "client.Job", top=False) for i, item in enumerate(value)
        ]

    @staticmethod
    def check_job(value: Any, path: str, gotype: str, top: bool = True) -> Payload:
        """Type-check a decoded job object and keep only the struct's fields."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            if top:
                raise GoJSONError(
                    f"json: cannot unmarshal {json_kind(value)} into Go value of type {gotype}"
                )
            kind = json_kind(value)
            raise GoJSONError(
                f"json: cannot unmarshal {kind} into Go struct field {path} of type {gotype}"
            )
        job: Payload = {}
        fields = _JOB_FIELDS
        for key, item in value.items():
            gotype_field = fields.get(key)
            if gotype_field is None:
                continue
            # The usual fields, checked here: a call per field costs more than the check.
            if (gotype_field is STRING and item.__class__ is str) or (
                gotype_field is _ARRAY and item.__class__ is list
            ):
                job[key] = item
            else:
                job[key] = check_field(item, f"{path}.{key}", gotype_field)
        return job

    @staticmethod
    def encode(job: Payload) -> bytes:
        """The job's canonical bytes, as Go's ``json.Marshal`` writes the struct."""
        # One f-string, the optional parts "" when absent: every job goes through here,
        # and a list joined part by part costs about twice as much.
        get = job.get
        retry = get("retry")
        failure = get("failure")
        custom = get("custom")
        created, enqueued, at = get("created_at"), get("enqueued_at"), get("at")
        args = get("args")
        reserve_for, backtrace = get("reserve_for"), get("backtrace")
        text = (
            f"{{{_RETRY}{'null' if retry is None else retry}"
            f"{'' if failure is None else _FAILURE + _enc_failure(failure)}"
            f"{_CUSTOM + go_dumps_text(custom) if custom else ''}"
            f"{_JID}{_quote(get('jid') or '')}"
            f"{_QUEUE}{_quote(get('queue') or '')}"
            f"{_JOBTYPE}{_quote(get('jobtype') or '')}"
            f"{_CREATED + _quote(created) if created else ''}"
            f"{_ENQUEUED + _quote(enqueued) if enqueued else ''}"
            f"{_AT + _quote(at) if at else ''}"
            f"{_ARGS}{'null' if args is None else go_dumps_text(args)}"
            f"{_RESERVE_FOR + str(reserve_for) if reserve_for else ''}"
            f"{_BACKTRACE + str(backtrace) if backtrace else ''}}}"
        )
        # Most jobs are ASCII with nothing Go escapes differently: skip go_bytes' scans.
        if (
            text.isascii()
            and "<" not in text
            and ">" not in text
            and "&" not in text
            and _BACKSLASH not in text
        ):
            return text.encode()
        return go_bytes(text)

"""The arguments of ACK, FAIL, BEAT and MUTATE, decoded into the real server's structs.

Anything Go would not decode into the command's struct is one error: ACK, FAIL and BEAT
raise :class:`CommandArgumentError` (the dispatcher answers ``-ERR invalid <line>``);
MUTATE's :meth:`MutateCommand.decode` raises :class:`~werk.server._gojson.GoJSONError`
with Go's text.

Example::

    >>> from werk.server._gojson import GoDecoder
    >>> parse_ack(GoDecoder(), b'{"jid":"0123456789","note":null}')
    '0123456789'
    >>> op = MutateCommand.decode(GoDecoder(), b'{"cmd":"kill","target":"dead","filter":{}}')
    >>> op.cmd, op.target, op.has_filter, op.jids
    ('kill', 'dead', True, [])
"""

from __future__ import annotations

from typing import Any

from werk.server._gojson import GoDecoder, GoJSONError
from werk.server._payload import INT, STRING, JobCodec, check_field, json_kind, type_error

__all__ = ["CommandArgumentError", "MutateCommand", "parse_ack", "parse_beat", "parse_fail"]


class CommandArgumentError(ValueError):
    """The argument of ACK, FAIL or BEAT does not decode into the server's struct (never
    reaches a user: the dispatcher turns it into the reply)."""


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
                out[key] = check_field(item, key, gotype)
            except GoJSONError:
                raise CommandArgumentError from None
    return out


def parse_ack(decode: _Loads, data: bytes) -> str:
    """The jid of ``ACK {"jid":...}``; CommandArgumentError unless a string map with ``jid``."""
    value = _object(decode, data)
    for item in value.values():
        if item is not None and not isinstance(item, str):
            raise CommandArgumentError
    if "jid" not in value:
        raise CommandArgumentError
    return value["jid"] or ""


_FAIL_FIELDS = {"jid": STRING, "message": STRING, "errtype": STRING, "backtrace": "[]string"}
_BEAT_FIELDS = {"wid": STRING, "current_state": STRING, "rss_kb": INT}


def parse_fail(decode: _Loads, data: bytes) -> dict[str, Any]:
    """The FAIL payload (``jid``, ``message``, ``errtype``, ``backtrace``) as Go decodes it."""
    return _struct(decode, data, _FAIL_FIELDS)


def parse_beat(decode: _Loads, data: bytes) -> dict[str, Any]:
    """The BEAT payload (``wid``, ``current_state``, ``rss_kb``) as Go decodes it."""
    return _struct(decode, data, _BEAT_FIELDS)


class MutateCommand:
    """A decoded MUTATE argument (Go's ``client.Operation``): ``cmd``, ``target`` and an
    optional filter (``jids``, ``regexp``, ``jobtype``)."""

    __slots__ = ("cmd", "has_filter", "jids", "jobtype", "regexp", "target")

    def __init__(self) -> None:
        self.cmd = ""
        self.target = ""
        self.has_filter = False
        self.jids: list[str] = []
        self.regexp = ""
        self.jobtype = ""

    @classmethod
    def decode(cls, decode: _Loads, data: bytes) -> MutateCommand:
        """Decode the MUTATE argument; GoJSONError carries Go's text (no prefix)."""
        value = decode.loads(data)
        op = cls()
        if value is None:
            return op
        if not isinstance(value, dict):
            raise GoJSONError(
                f"json: cannot unmarshal {json_kind(value)} into Go value of type client.Operation"
            )
        for key, item in value.items():
            if key in ("cmd", "target"):
                setattr(op, key, check_field(item, f"Operation.{key}", STRING) or "")
            elif key == "filter" and item is not None:
                if not isinstance(item, dict):
                    raise type_error(item, "Operation.filter", "client.JobFilter")
                op.has_filter = True
                for fkey, fitem in item.items():
                    path = f"Operation.filter.{fkey}"
                    if fkey == "jids":
                        op.jids = check_field(fitem, path, "[]string") or []
                    elif fkey in ("regexp", "jobtype"):
                        setattr(op, fkey, check_field(fitem, path, STRING) or "")
        return op

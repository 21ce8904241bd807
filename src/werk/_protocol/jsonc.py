"""Compact JSON, the only JSON the Faktory wire accepts everywhere.

MUTATE lines must contain exactly one space, so every JSON werk sends is compact
(no spaces between tokens). orjson is used when installed (``pip install werk[fast]``);
the standard library otherwise. Both produce the same bytes for ordinary job data.

Example::

    >>> dumps({"jid": "abc", "args": [1, 2]})
    b'{"jid":"abc","args":[1,2]}'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["dumps", "dumps_str", "loads"]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_encode_str: Callable[[str], str] = json.encoder.encode_basestring

# JSONEncoder.encode() builds a C encoder on every call (about half the cost of encoding
# a job); build it once. Without the markers dict it has no circular-reference check: a
# cycle ends in RecursionError, not ValueError. What werk encodes is its own dicts and
# validated job data (nested at most 64 deep, so acyclic). Same arguments since 3.6.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode: Callable[[Any, int], Sequence[str]] | None = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, _encoder.default, _encode_str, None, ":", ",", False, False, False)
)


def dumps_str(text: str) -> bytes:
    """A string as JSON, as :func:`dumps` writes it, without the general encoder's cost
    (ACK's jid is the per-job path).

    Example::

        >>> dumps_str('a"é')
        b'"a\\\\"\\xc3\\xa9"'
    """
    return _encode_str(text).encode("utf-8", "surrogatepass")


def _std_dumps(obj: Any) -> bytes:
    if _c_encode is None:  # pragma: no cover - Pythons without the C accelerator
        return _encoder.encode(obj).encode("utf-8", "surrogatepass")
    return "".join(_c_encode(obj, 0)).encode("utf-8", "surrogatepass")


def _std_loads(data: bytes | bytearray | memoryview | str) -> Any:
    if isinstance(data, memoryview):
        data = bytes(data)
    return json.loads(data)


try:  # pragma: no cover - depends on the optional extra
    import orjson  # type: ignore[import-not-found,unused-ignore]

    # Typed here so the module type-checks the same with and without the extra installed.
    _orjson_dumps: Callable[[Any], bytes] = orjson.dumps
    _orjson_loads: Callable[[bytes | bytearray | memoryview | str], Any] = orjson.loads

    def dumps(obj: Any) -> bytes:
        """Encode ``obj`` as compact UTF-8 JSON bytes."""
        try:
            return _orjson_dumps(obj)
        except TypeError:
            # orjson refuses ints beyond 64 bits and some subclasses; the stdlib
            # encoder handles them (and raises for what JSON cannot carry).
            return _std_dumps(obj)

    loads = _orjson_loads  # no wrapper: FETCH's reply is decoded once per job

except ImportError:  # pragma: no cover - depends on the optional extra
    dumps = _std_dumps
    loads = _std_loads

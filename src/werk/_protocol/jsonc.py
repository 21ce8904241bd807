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
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _std_dumps(obj: Any) -> bytes:
    return _encoder.encode(obj).encode("utf-8", "surrogatepass")


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

    def loads(data: bytes | bytearray | memoryview | str) -> Any:
        """Decode JSON bytes or text."""
        return _orjson_loads(data)

except ImportError:  # pragma: no cover - depends on the optional extra
    dumps = _std_dumps
    loads = _std_loads

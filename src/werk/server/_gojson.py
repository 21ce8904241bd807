"""JSON the way the real (Go) server reads and writes it.

The reference server decodes every payload with Go's ``encoding/json`` and re-encodes it,
so a compatible server must reproduce three things:

* the decoder's **error texts** (``invalid character 'x' after top-level value``,
  ``unexpected end of JSON input`` ...), which clients see inside ``-ERR`` replies;
  :func:`syntax_error` finds the first offending byte exactly as Go's scanner does.
  It only runs after the fast C decoder has already failed, so it costs nothing per job.
* **numbers as float64**: ``2.0`` comes back as ``2``, integers beyond 2**53 lose
  precision (:class:`GoDecoder`).
* the encoder's **escaping**: ``<``, ``>``, ``&``, U+2028 and U+2029 as ``\\u`` escapes,
  non-ASCII as raw UTF-8, invalid UTF-8 and lone surrogates as U+FFFD (:func:`go_bytes`).

Example::

    >>> syntax_error(b'{"a":1} xyz')
    "invalid character 'x' after top-level value"
    >>> GoDecoder().loads(b'[2.0, 1e2, "a<b"]')
    [2, 100, 'a<b']
    >>> go_bytes('"a<b"')
    b'"a\\\\u003cb"'
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

__all__ = [
    "GoDecoder",
    "GoJSONError",
    "GoNumber",
    "go_bytes",
    "go_dumps",
    "go_quote",
    "syntax_error",
]


class GoJSONError(ValueError):
    """A payload Go's decoder would refuse; ``str(exc)`` is Go's message."""


class GoNumber(int):
    """An integral value written as a float literal (``2.0``), or an integer beyond 2**53.

    Behaves as the int Go's float64 round-trip prints, and keeps the literal so that a
    typed ``int`` field can refuse it with Go's text (``number 2.0``).
    """

    literal: str


def _u_escape_handler(exc: UnicodeError) -> tuple[str | bytes, int]:
    # Go replaces each invalid byte (and each lone surrogate) with U+FFFD. The UTF-8
    # encoder only takes bytes (or ASCII) as a replacement, the decoder a str.
    if isinstance(exc, UnicodeEncodeError):
        return b"\xef\xbf\xbd" * (exc.end - exc.start), exc.end
    assert isinstance(exc, UnicodeDecodeError)
    return "\ufffd" * (exc.end - exc.start), exc.end


codecs.register_error("werk-go-replace", _u_escape_handler)

_WS = b" \t\n\r"
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")


def go_quote(text: str, *, time_style: bool = False) -> str:
    r"""Go's ``strconv.Quote`` (``%q``), the quoting of the real server's error texts.

    Printable characters stay as they are; ``"`` and ``\`` are escaped; the rest become
    ``\n``-style, ``\xNN``, ``\uNNNN`` or ``\UNNNNNNNN`` escapes (a lone surrogate, which
    Go sees as invalid UTF-8, becomes its bytes as ``\xNN``).

    ``time_style=True`` is the other quoting of Go's standard library, the ``time``
    package's own, in its parse errors: every byte of a character below a space or
    beyond ASCII as ``\xNN``, everything else as it is (``"`` and ``\`` escaped).

    Example::

        >>> print(go_quote('a"b\\c'), go_quote("tab\there"), go_quote("\x01\u2028é"))
        "a\"b\\c" "tab\there" "\x01\u2028é"
        >>> print(go_quote("\x01é", time_style=True))
        "\x01\xc3\xa9"
    """
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif time_style:
            out.append(ch if " " <= ch < "\x80" else _byte_escapes(ch))
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(_escape(ch))
    out.append('"')
    return "".join(out)


def _byte_escapes(ch: str) -> str:
    return "".join(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))


_NAMED = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _escape(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xD800 <= code < 0xE000:
        return _byte_escapes(ch)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _quote_char(c: int) -> str:
    # Go's encoding/json quoteChar: one byte of the input, as the rune of that value.
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + go_quote(chr(c))[1:-1] + "'"


def _bad(c: int, context: str) -> GoJSONError:
    return GoJSONError(f"invalid character {_quote_char(c)} {context}")


_EOF = GoJSONError("unexpected end of JSON input")


def _skip_ws(data: bytes, i: int) -> int:
    n = len(data)
    while i < n and data[i] in _WS:
        i += 1
    return i


def _scan_string(data: bytes, i: int) -> int:
    """``data[i]`` is the opening quote; return the index after the closing quote."""
    n = len(data)
    i += 1
    while True:
        if i >= n:
            raise _EOF
        c = data[i]
        if c == 0x22:
            return i + 1
        if c == 0x5C:
            i += 1
            if i >= n:
                raise _EOF
            e = data[i]
            if e == 0x75:  # \u
                for _ in range(4):
                    i += 1
                    if i >= n:
                        raise _EOF
                    if data[i] not in _HEX:
                        raise _bad(data[i], "in \\u hexadecimal character escape")
            elif e not in b'"\\/bfnrt':
                raise _bad(e, "in string escape code")
        elif c < 0x20:
            raise _bad(c, "in string literal")
        i += 1


def _scan_number(data: bytes, i: int) -> int:
    n = len(data)
    if data[i] == 0x2D:  # '-'
        i += 1
        if i >= n:
            raise _EOF
        if data[i] not in _DIGITS:
            raise _bad(data[i], "in numeric literal")
    if data[i] == 0x30:
        i += 1
    else:
        while i < n and data[i] in _DIGITS:
            i += 1
    if i < n and data[i] == 0x2E:  # '.'
        i += 1
        if i >= n:
            raise _EOF
        if data[i] not in _DIGITS:
            raise _bad(data[i], "after decimal point in numeric literal")
        while i < n and data[i] in _DIGITS:
            i += 1
    if i < n and data[i] in b"eE":
        i += 1
        if i < n and data[i] in b"+-":
            i += 1
        if i >= n:
            raise _EOF
        if data[i] not in _DIGITS:
            raise _bad(data[i], "in exponent of numeric literal")
        while i < n and data[i] in _DIGITS:
            i += 1
    return i


def _scan_literal(data: bytes, i: int, word: bytes) -> int:
    n = len(data)
    for k in range(1, len(word)):
        if i + k >= n:
            raise _EOF
        if data[i + k] != word[k]:
            raise _bad(data[i + k], f"in literal {word.decode()} (expecting '{chr(word[k])}')")
    return i + len(word)


def _scan_value(data: bytes, i: int, context: str) -> int:
    """Scan one value starting at ``i`` (after whitespace); return the index after it."""
    i = _skip_ws(data, i)
    if i >= len(data):
        raise _EOF
    c = data[i]
    if c == 0x7B:  # {
        i = _skip_ws(data, i + 1)
        if i >= len(data):
            raise _EOF
        if data[i] == 0x7D:
            return i + 1
        while True:
            if i >= len(data):
                raise _EOF
            if data[i] != 0x22:
                raise _bad(data[i], "looking for beginning of object key string")
            i = _skip_ws(data, _scan_string(data, i))
            if i >= len(data):
                raise _EOF
            if data[i] != 0x3A:
                raise _bad(data[i], "after object key")
            i = _skip_ws(data, _scan_value(data, i + 1, "looking for beginning of value"))
            if i >= len(data):
                raise _EOF
            if data[i] == 0x7D:
                return i + 1
            if data[i] != 0x2C:
                raise _bad(data[i], "after object key:value pair")
            i = _skip_ws(data, i + 1)
    if c == 0x5B:  # [
        i = _skip_ws(data, i + 1)
        if i >= len(data):
            raise _EOF
        if data[i] == 0x5D:
            return i + 1
        while True:
            i = _skip_ws(data, _scan_value(data, i, "looking for beginning of value"))
            if i >= len(data):
                raise _EOF
            if data[i] == 0x5D:
                return i + 1
            if data[i] != 0x2C:
                raise _bad(data[i], "after array element")
            i += 1
    if c == 0x22:
        return _scan_string(data, i)
    if c == 0x2D or c in _DIGITS:
        return _scan_number(data, i)
    for word in (b"true", b"false", b"null"):
        if c == word[0]:
            return _scan_literal(data, i, word)
    raise _bad(c, context)


def syntax_error(data: bytes) -> str | None:
    """Go's message for the first syntax error in ``data``, or None if it is valid JSON.

    Example::

        >>> syntax_error(b"[not json]")
        "invalid character 'o' in literal null (expecting 'u')"
        >>> syntax_error(b"")
        'unexpected end of JSON input'
    """
    try:
        end = _scan_value(data, 0, "looking for beginning of value")
        end = _skip_ws(data, end)
        if end < len(data):
            raise _bad(data[end], "after top-level value")
    except GoJSONError as exc:
        return str(exc)
    except RecursionError:
        return "exceeded max depth"
    return None


def _go_int(text: str) -> Any:
    if len(text) <= 15:
        return int(text)
    value = int(text)
    if -(2**53) <= value <= 2**53:
        return value
    return _as_float64(float(value), text)


def _go_float(text: str) -> Any:
    return _as_float64(float(text), text)


def _as_float64(value: float, literal: str) -> Any:
    if value != value or value in (float("inf"), float("-inf")):
        raise GoJSONError(f"json: cannot unmarshal number {literal} into Go value of type float64")
    if value.is_integer() and abs(value) < 1e21:
        # Go prints an integral float64 as the shortest decimal that round-trips.
        digits = int(value) if abs(value) <= 2**53 else int(Decimal(repr(value)))
        number = GoNumber(digits)
        number.literal = literal
        return number
    return value


def _refuse_constant(name: str) -> Any:
    raise GoJSONError(name)


# A \uD800-\uDFFF escape: Python keeps a lone one as a surrogate in the str, which no
# UTF-8 encoder (SQLite's included) accepts; Go decodes it as U+FFFD. Checked on the
# bytes first so that the common payload pays one scan, not a walk of the value.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


_TEXT_WS = ("", " ", "\t", "\n", "\r")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "werk-go-replace").decode("utf-8")
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


class GoDecoder:
    """Decode JSON bytes as Go's decoder sees them (numbers as float64, U+FFFD for bad UTF-8).

    Raises :class:`GoJSONError` with Go's syntax-error text.

    Example::

        >>> GoDecoder().loads(b'{"n":12345678901234567890}')
        {'n': 12345678901234567000}
    """

    __slots__ = ("_scan",)

    def __init__(self) -> None:
        # The scanner itself, not JSONDecoder.decode: its Python frames and two
        # whitespace regex matches cost more than scanning a job.
        decoder = json.JSONDecoder(
            parse_float=_go_float, parse_int=_go_int, parse_constant=_refuse_constant
        )
        scan: Callable[[str, int], tuple[Any, int]]
        scan = decoder.scan_once  # type: ignore[attr-defined]
        self._scan = scan

    def loads(self, data: bytes) -> Any:
        """Decode ``data``; raise GoJSONError with Go's message when it is not valid JSON."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "werk-go-replace")
        try:
            start = 0
            if text[:1] in _TEXT_WS:  # also "": the scan below then fails
                start = len(text) - len(text.lstrip(" \t\n\r"))
            value, end = self._scan(text, start)
            if end != len(text) and text[end:].lstrip(" \t\n\r"):
                raise ValueError("extra data")
            if b"\\u" in data and _SURROGATE.search(data) is not None:
                value = _replace_surrogates(value)
            return value
        except StopIteration:
            pass
        except GoJSONError as exc:
            if str(exc).startswith("json:"):
                raise
        except (ValueError, RecursionError):
            pass
        raise GoJSONError(syntax_error(data) or "invalid JSON") from None


_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)
# Python writes \b and \f as short escapes; Go writes \u0008 and \u000c. Escaped
# backslashes are matched first so that a literal backslash followed by "b" is left alone.
_SHORT = re.compile(rb"\\(\\|b|f)")


def _long_escape(m: re.Match[bytes]) -> bytes:
    c = m.group(1)
    if c == b"\\":
        return b"\\\\"
    return b"\\u0008" if c == b"b" else b"\\u000c"


def go_bytes(text: str) -> bytes:
    """Encode JSON text built by Python's encoder into the bytes Go's encoder writes.

    Example::

        >>> go_bytes('{"a":"x&y"}')
        b'{"a":"x\\\\u0026y"}'
    """
    try:
        out = text.encode("utf-8")
    except UnicodeEncodeError:
        out = text.encode("utf-8", "werk-go-replace")
    for raw, escaped in _ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    if b"\\b" in out or b"\\f" in out:
        out = _SHORT.sub(_long_escape, out)
    return out


_sorted_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
)


def _c_encoder() -> Any:
    # JSONEncoder.encode builds a new C encoder on every call, which costs more than
    # encoding a job's args; build it once (same settings) where the C module exists.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        enc = make(
            None, _sorted_encoder.default, encode_basestring, None, ":", ",", True, False, False
        )
        if "".join(enc({"b": [1.5, "<"], "a": None}, 0)) != '{"a":null,"b":[1.5,"<"]}':
            return None
    except (TypeError, ValueError):  # another signature in some Python version
        return None
    return enc


_ENCODE = _c_encoder()


def go_dumps_text(obj: Any) -> str:
    """``obj`` as compact JSON text, map keys sorted (before :func:`go_bytes` escaping).

    Example::

        >>> go_dumps_text({"b": 1, "a": "<"})
        '{"a":"<","b":1}'
    """
    if _ENCODE is None:
        return _sorted_encoder.encode(obj)
    if obj.__class__ is str:
        return str(encode_basestring(obj))
    return "".join(_ENCODE(obj, 0))


def go_dumps(obj: Any) -> bytes:
    """Encode ``obj`` as Go's ``json.Marshal`` would (map keys sorted, compact, escaped).

    Example::

        >>> go_dumps({"b": 1, "a": [1.5, None]})
        b'{"a":[1.5,null],"b":1}'
    """
    return go_bytes(go_dumps_text(obj))


def go_float(value: float) -> str:
    """A float64 as Go's JSON encoder writes it (``0``, ``4.34``, ``0.00001``, ``1e-7``).

    Example::

        >>> go_float(0.0), go_float(2.0), go_float(1e-05), go_float(1e-07)
        ('0', '2', '0.00001', '1e-7')
    """
    if value == 0:
        return "0"
    text = repr(float(value))
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        mantissa, _, exp = text.partition("e")
        if not exp:  # repr chose plain notation; recompute
            mantissa, _, exp = f"{value:e}".partition("e")
        power = int(exp)
        sign = "-" if power < 0 else "+"
        digits = str(abs(power))
        if len(digits) < 2 and power > 0:
            digits = "0" + digits
        return f"{mantissa}e{sign}{digits}"
    return format(Decimal(text).normalize(), "f")

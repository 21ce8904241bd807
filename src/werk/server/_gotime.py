"""Go's ``time.Parse(time.RFC3339Nano, value)``: what it accepts and the errors it writes.

The real server parses a job's ``at`` this way, and its error text reaches the client
(``-ERR invalid timestamp for 'at': "2030-01-01": parsing time "2030-01-01" as
"2006-01-02T15:04:05.999999999Z07:00": cannot parse "" as "T"``).

Example::

    >>> parse_rfc3339("1970-01-01T00:01:00.5+00:01")
    0.5
    >>> parse_rfc3339("2030-01-01")
    Traceback (most recent call last):
    ...
    ValueError: parsing time "2030-01-01" as "2006-01-02T15:04:05.999999999Z07:00": ...
"""

from __future__ import annotations

import calendar

from werk.server._gojson import go_quote


def _quote(text: str) -> str:
    return go_quote(text, time_style=True)


__all__ = ["LAYOUT", "parse_rfc3339"]

LAYOUT = "2006-01-02T15:04:05.999999999Z07:00"
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_rfc3339(value: str) -> float:
    """Parse ``value`` as Go does with the RFC3339Nano layout; return Unix seconds.

    Raises ValueError whose text is Go's error message.
    """
    pos = 0

    def cannot(layout_elem: str) -> ValueError:
        return ValueError(
            f"parsing time {_quote(value)} as {_quote(LAYOUT)}: "
            f"cannot parse {_quote(value[pos:])} as {_quote(layout_elem)}"
        )

    def out_of_range(what: str) -> ValueError:
        return ValueError(f"parsing time {_quote(value)}: {what} out of range")

    def literal(text: str) -> None:
        nonlocal pos
        if not value.startswith(text, pos):
            raise cannot(text)
        pos += len(text)

    def number(elem: str, width: int, fixed: bool = True) -> int:
        nonlocal pos
        digits = value[pos : pos + width]
        if fixed:
            if len(digits) < width or not digits.isdigit() or not digits.isascii():
                raise cannot(elem)
        else:
            # Go's getnum(value, false): one digit, or two when the second is a digit.
            if not digits[:1].isdigit() or not digits[:1].isascii():
                raise cannot(elem)
            if not (len(digits) == 2 and digits[1].isdigit() and digits[1].isascii()):
                digits = digits[:1]
        pos += len(digits)
        return int(digits)

    year = number("2006", 4)
    literal("-")
    month = number("01", 2)
    if not 1 <= month <= 12:
        raise out_of_range("month")
    literal("-")
    day = number("02", 2)
    literal("T")
    hour = number("15", 2, fixed=False)
    if hour > 23:
        raise out_of_range("hour")
    literal(":")
    minute = number("04", 2)
    if minute > 59:
        raise out_of_range("minute")
    literal(":")
    second = number("05", 2)
    if second > 59:
        raise out_of_range("second")
    frac = 0.0
    if (
        pos + 1 < len(value)
        and value[pos] in ".,"
        and value[pos + 1].isdigit()
        and value[pos + 1].isascii()
    ):
        end = pos + 1
        while end < len(value) and value[end].isdigit() and value[end].isascii():
            end += 1
        frac = float("0." + value[pos + 1 : end])
        pos = end
    offset = 0
    if value.startswith("Z", pos):
        pos += 1
    else:
        zone = value[pos : pos + 6]
        ok = (
            len(zone) == 6
            and zone[0] in "+-"
            and zone[3] == ":"
            and zone[1:3].isdigit()
            and zone[4:6].isdigit()
            and zone[1:3].isascii()
            and zone[4:6].isascii()
        )
        if not ok:
            raise cannot("Z07:00")
        hh, mm = int(zone[1:3]), int(zone[4:6])
        if hh > 24:
            raise out_of_range("time zone offset hour")
        if mm > 60:
            raise out_of_range("time zone offset minute")
        offset = (hh * 3600 + mm * 60) * (1 if zone[0] == "+" else -1)
        pos += 6
    if pos < len(value):
        raise ValueError(f"parsing time {_quote(value)}: extra text: {_quote(value[pos:])}")
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day < 1 or day > _DAYS[month - 1] or (month == 2 and day == 29 and not leap):
        raise out_of_range("day")
    whole = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return whole - offset + frac

"""Timestamps the way Faktory writes and reads them.

The server writes Go's RFC3339Nano in UTC: ``2025-01-02T03:04:05.2Z`` (trailing zeros of
the fraction removed, no fraction at all when it is zero). It reads any RFC3339 timestamp
with a mandatory zone (``Z`` or ``±HH:MM``) and a 1-9 digit fraction.

Example::

    >>> format_time(datetime(2025, 1, 2, 3, 4, 5, 200000, tzinfo=timezone.utc))
    '2025-01-02T03:04:05.2Z'
    >>> parse_time("2025-01-02T05:04:05+02:00").isoformat()
    '2025-01-02T05:04:05+02:00'
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

__all__ = ["epoch_to_string", "format_time", "now_string", "parse_time", "to_epoch"]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})\Z"
)


def format_time(dt: datetime) -> str:
    """Render an aware datetime as Go RFC3339Nano in UTC (a naive one is taken as UTC)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    base = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    if dt.microsecond:
        return f"{base}.{dt.microsecond:06d}".rstrip("0") + "Z"
    return base + "Z"


def epoch_to_string(ts: float) -> str:
    """Render Unix seconds as Go RFC3339Nano in UTC, keeping nanosecond digits.

    Example::

        >>> epoch_to_string(0.25)
        '1970-01-01T00:00:00.25Z'
    """
    whole = int(ts // 1)
    nanos = round((ts - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole += 1
        nanos -= 1_000_000_000
    t = time.gmtime(whole)
    base = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    if nanos:
        return f"{base}.{nanos:09d}".rstrip("0") + "Z"
    return base + "Z"


def now_string() -> str:
    """The current time as Go RFC3339Nano in UTC."""
    return epoch_to_string(time.time())


def parse_time(text: str) -> datetime:
    """Parse an RFC3339 timestamp with a mandatory zone; raise ValueError otherwise.

    Fractions beyond microseconds are truncated (Python's datetime resolution).
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC3339 timestamp with a zone: {text!r}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    if zone == "Z":
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        hh, mm = int(zone[1:3]), int(zone[4:6])
        if hh > 23 or mm > 59:
            raise ValueError(f"time zone offset out of range: {text!r}")
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
    )


def to_epoch(text: str) -> float:
    """Parse an RFC3339 timestamp into Unix seconds (as many fraction digits as a float keeps)."""
    dt = parse_time(text)
    m = _RFC3339.match(text)
    assert m is not None
    frac = m.group(7) or ""
    whole = dt.replace(microsecond=0).timestamp()
    return whole + (int(frac) / 10 ** len(frac) if frac else 0.0)

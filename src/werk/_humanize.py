"""Numbers, sizes, durations and times written for people: the web UI's template filters
and ``werk info``'s table (standard library only, so the CLI needs no extra).

Example::

    >>> delimited(1234567)
    '1,234,567'
    >>> compact(1234)
    '1.2k'
    >>> ago(100.0, now=280.0)
    '3 minutes ago'
    >>> rss(48812)
    '47.7 MB'
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from werk._protocol.timefmt import to_epoch

__all__ = [
    "ago",
    "args_preview",
    "compact",
    "delimited",
    "duration",
    "exact_time",
    "iso_time",
    "pretty_json",
    "rss",
    "to_timestamp",
]


def delimited(value: int | float) -> str:
    """An integer with thousands separators: ``1,234``."""
    return f"{int(value):,}"


def compact(value: int | float) -> str:
    """A short count: ``999``, ``1.2k``, ``34k``, ``5.6M``, ``7.8B``."""
    n = float(value)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            scaled = n / limit
            text = f"{scaled:.1f}" if scaled < 10 else f"{scaled:.0f}"
            return sign + text.removesuffix(".0") + suffix
    return sign + f"{int(n)}"


def rss(kb: int) -> str:
    """Resident memory given in KiB: ``812 KB``, ``47.7 MB``, ``1.2 GB``; ``-`` when unknown."""
    if kb <= 0:
        return "-"
    if kb < 1024:
        return f"{kb} KB"
    if kb < 1024 * 1024:
        return f"{kb / 1024:.1f} MB"
    return f"{kb / (1024 * 1024):.1f} GB"


def duration(seconds: float) -> str:
    """A span in its two largest units: ``42s``, ``5m 3s``, ``2h 10m``, ``3d 4h``."""
    s = max(int(seconds), 0)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def to_timestamp(value: Any) -> float | None:
    """Unix seconds from a float/int or an RFC3339 string; None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return to_epoch(value)
        except ValueError:
            return None
    return None


_UNITS = ((31536000, "year"), (2592000, "month"), (86400, "day"), (3600, "hour"), (60, "minute"))


def ago(value: Any, now: float | None = None) -> str:
    """A moment relative to ``now``: ``just now``, ``3 minutes ago``, ``in 2 hours``."""
    ts = to_timestamp(value)
    if ts is None:
        return "-"
    delta = (time.time() if now is None else now) - ts
    future = delta < 0
    span = abs(delta)
    if span < 10:
        return "just now"
    amount, unit = int(span), "second"
    for size, name in _UNITS:
        if span >= size:
            amount, unit = int(span // size), name
            break
    text = f"{amount} {unit}{'' if amount == 1 else 's'}"
    return f"in {text}" if future else f"{text} ago"


def exact_time(value: Any) -> str:
    """The exact UTC time for a hover title: ``2025-01-02 03:04:05.123 UTC``."""
    ts = to_timestamp(value)
    if ts is None:
        return ""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d} UTC"


def iso_time(value: Any) -> str:
    """A machine-readable ISO 8601 UTC time for ``<time datetime=...>``."""
    ts = to_timestamp(value)
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def args_preview(args: Any, limit: int = 120) -> str:
    """Job arguments as one line of JSON, cut at ``limit`` characters with an ellipsis."""
    text = json.dumps(args, ensure_ascii=False, separators=(", ", ": "))
    if isinstance(args, list):
        text = text[1:-1]
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text


def pretty_json(value: Any) -> str:
    """Indented JSON for a job page (every byte of the payload, nothing cut)."""
    return json.dumps(value, ensure_ascii=False, indent=2)

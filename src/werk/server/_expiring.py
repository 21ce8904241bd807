# Expiring jobs (docs/enterprise.md section 6): custom.expires_in becomes a stored
# custom.expires_at at PUSH; a job whose expires_at is not after now is discarded when a
# FETCH would hand it out (logged as "JID <jid>: job expired" and counted), and the same
# FETCH goes on to the next job. Scheduled and retry sets are never scanned.
#
# The count of expired jobs is a record (space "expiring", key "expired"), shown on the
# web UI's Throttles page; it survives restarts and is reset by FLUSH like the other
# counters.

from __future__ import annotations

import calendar
import math
import re

from werk._protocol.timefmt import epoch_to_string
from werk.server._extension import Extension, MetricSample, Records
from werk.server._gojson import go_dumps_text, go_quote
from werk.server._gotime import parse_rfc3339
from werk.server._payload import Payload

__all__ = ["BAD_EXPIRES_IN", "EXPIRED", "SPACE", "ExpiringJobs", "to_epoch"]

SPACE = "expiring"
EXPIRED = "job expired"
_YEAR_10000 = 253402300800.0
BAD_EXPIRES_IN = "invalid expires_in: must be a number of seconds greater than 0"


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(?:(Z)|([+-])(\d\d):(\d\d))\Z"
)


def to_epoch(text: str) -> float:
    """RFC 3339 ``text`` as Unix seconds: the common forms (``...Z``, ``...+02:00``,
    up to nanoseconds) directly, anything else through the Go-exact parser (whose
    ValueError says what is wrong).

    Example::

        >>> to_epoch("1970-01-01T01:00:00.5+01:00")
        0.5
    """
    m = _RFC3339.match(text)
    if m is not None:
        year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
        if 1 <= month <= 12 and 1 <= day <= 28 and hour < 24 and minute < 60 and second < 60:
            seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
            if m.group(9):
                zone_hours, zone_minutes = int(m.group(10)), int(m.group(11))
                if zone_hours >= 24 or zone_minutes >= 60:
                    return parse_rfc3339(text)
                offset = zone_hours * 3600 + zone_minutes * 60
                seconds += -offset if m.group(9) == "+" else offset
            fraction = m.group(7)
            return seconds + float(fraction) if fraction else float(seconds)
    return parse_rfc3339(text)  # days 29 to 31, leap seconds, errors: Go's own rules


def bad_expires_at(value: object) -> str | None:
    """The error text for a ``custom.expires_at`` that is not an RFC 3339 time, or None."""
    if not isinstance(value, str):
        return f"invalid timestamp for 'expires_at': {go_dumps_text(value)}: not a string"
    try:
        to_epoch(value)
    except ValueError as exc:
        return f"invalid timestamp for 'expires_at': {go_quote(value)}: {exc}"
    return None


class ExpiringJobs(Extension):
    """Drops a job at FETCH once its ``custom.expires_at`` has come; see the module
    comment."""

    def __init__(self) -> None:
        self.expired = 0

    def load(self, records: Records) -> None:
        raw = records.get(SPACE, {}).get("expired")
        self.expired = int(raw) if raw else 0

    def metric_samples(self) -> list[MetricSample]:
        return [
            MetricSample(
                "werk_server_expired_jobs",
                self.expired,
                kind="counter",
                help="Jobs dropped at FETCH because they had expired (kept across restarts).",
            )
        ]

    def flushed(self) -> None:
        self.expired = 0
        self.host.clear_records(SPACE)

    def check_push(self, job: Payload) -> str | None:
        custom = job["custom"]
        expires_at = custom.get("expires_at")
        if expires_at is not None:
            error = bad_expires_at(expires_at)
            if error is not None:
                return error
        expires_in = custom.get("expires_in")
        if expires_in is None:
            return None
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int | float)
            or not expires_in > 0
            or not math.isfinite(expires_in)
        ):
            return BAD_EXPIRES_IN
        if expires_at is None:  # both given: expires_at wins
            # The deadline is fixed now: it survives retries and restarts, and workers
            # can read it.
            when = self.host.clock.now() + expires_in
            if when >= _YEAR_10000:  # RFC 3339 has four-digit years
                return BAD_EXPIRES_IN
            custom["expires_at"] = epoch_to_string(when)
        return None

    def fetch(self, job: Payload, queue: str, wid: str) -> str | None:
        expires_at = job["custom"].get("expires_at")
        if not expires_at or not isinstance(expires_at, str):
            return None
        try:
            deadline = to_epoch(expires_at)
        except ValueError:  # came in by MUTATE or a restore: not ours to judge
            return None
        return EXPIRED if deadline <= self.host.clock.now() else None

    def discarded(self, job: Payload, reason: str) -> None:
        if reason is EXPIRED:
            self.expired += 1
            self.host.put_record(SPACE, "expired", str(self.expired).encode())

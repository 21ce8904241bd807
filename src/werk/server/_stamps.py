"""The times and counter names the per-job path writes, formatted once per second.

``strftime`` is the slow part of stamping a job (``created_at``, ``enqueued_at``) or of
counting an ACK under its day (``processed:2025-01-02``): :class:`Stamps` formats the
second once and reuses it until the clock moves on.
"""

from __future__ import annotations

import time

from werk._protocol.timefmt import epoch_to_string
from werk.server._clock import Clock

__all__ = ["Stamps"]


class Stamps:
    """Cached time formats for one clock (see the module docstring)."""

    __slots__ = ("_clock", "_count_second", "_failed", "_ok", "_prefix", "_stamp_second")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._stamp_second = -1
        self._prefix = ""
        self._count_second = -1
        self._ok: tuple[str, ...] = ()
        self._failed: tuple[str, ...] = ()

    def now_string(self) -> str:
        """The clock's time as Go RFC3339Nano (``2025-01-02T03:04:05.2Z``)."""
        now = self._clock.now()
        whole = int(now)
        nanos = round((now - whole) * 1e9)
        if not 0 <= nanos < 1_000_000_000:
            return epoch_to_string(now)
        if whole != self._stamp_second:
            self._stamp_second = whole
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        if nanos:
            return f"{self._prefix}.{nanos:09d}".rstrip("0") + "Z"
        return self._prefix + "Z"

    def counters(self, failed: bool) -> tuple[str, ...]:
        """The counters an ACK (or a FAIL) adds one to: the totals and today's (local date)."""
        second = int(self._clock.now())
        if second != self._count_second:
            self._count_second = second
            day = time.strftime("%Y-%m-%d", time.localtime(second))
            self._ok = ("processed", f"processed:{day}")
            self._failed = (*self._ok, "failures", f"failures:{day}")
        return self._failed if failed else self._ok

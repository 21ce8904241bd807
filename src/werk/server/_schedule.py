"""Cron schedules: classic (Vixie) five-field expressions and the ``@hourly``-style names,
in UTC (docs/enterprise.md section 8.2).

Example::

    >>> s = Schedule.parse("*/15 9-17 * * MON-FRI")
    >>> import datetime as dt
    >>> t = dt.datetime(2025, 1, 3, 17, 50, tzinfo=dt.timezone.utc).timestamp()  # a Friday
    >>> dt.datetime.fromtimestamp(s.next_after(t), dt.timezone.utc).isoformat()
    '2025-01-06T09:00:00+00:00'
    >>> Schedule.parse("@every 5m")
    Traceback (most recent call last):
    ...
    werk.server._schedule.ScheduleError: @every is not a cron schedule (werk takes five ...)
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

__all__ = ["SHORTHANDS", "Schedule", "ScheduleError"]

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# name, lowest, highest, names (their values start at the lowest)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # at most (leap years)
_SEARCH_DAYS = 366 * 8 + 2  # a Feb 29 on a given weekday recurs within 28 years, but a
# valid day-of-month schedule (weekday unrestricted) recurs within 8 (2096 -> 2104)
_UTC = dt.timezone.utc


class ScheduleError(ValueError):
    """A schedule werk does not accept (the message says why)."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the allowed values of each field (weekday 0 = Sunday)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day of month starts with "*": only the weekday restricts (Vixie)
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Parse ``text``; :class:`ScheduleError` says what is wrong."""
        if not isinstance(text, str):
            raise ScheduleError(f"a schedule is a string, not {text!r}")
        spec = text.strip()
        if spec.startswith("@"):
            word = spec.split()[0].lower()
            if word not in SHORTHANDS or spec.lower() != word:
                names = ", ".join(SHORTHANDS)
                raise ScheduleError(
                    f"{spec.split()[0]} is not a cron schedule (werk takes five fields or {names})"
                )
            spec = SHORTHANDS[word]
        if spec.upper().startswith(("TZ=", "CRON_TZ=")):
            raise ScheduleError("a time zone prefix is not accepted: schedules run in UTC")
        fields = spec.split()
        if len(fields) != 5:
            raise ScheduleError(
                f"{len(fields)} fields; a schedule has five (minute hour day-of-month month "
                "day-of-week), without seconds or years"
            )
        values = [_field(f, *spec_) for f, spec_ in zip(fields, _FIELDS, strict=True)]
        weekdays = frozenset(0 if d == 7 else d for d in values[4])
        schedule = cls(
            text=text,
            minutes=tuple(sorted(values[0])),
            hours=tuple(sorted(values[1])),
            days=frozenset(values[2]),
            months=frozenset(values[3]),
            weekdays=weekdays,
            any_day=fields[2].startswith("*"),
            any_weekday=fields[4].startswith("*"),
        )
        if schedule.any_weekday and not any(
            day <= _DAYS_IN_MONTH[month - 1] for month in schedule.months for day in schedule.days
        ):
            raise ScheduleError("never fires: no month of the schedule has such a day")
        return schedule

    def _day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays  # both restricted: either will do (classic cron)

    def matches(self, when: float) -> bool:
        """Whether the minute holding ``when`` (Unix seconds) is a tick of the schedule."""
        t = dt.datetime.fromtimestamp(math.floor(when / 60) * 60, _UTC)
        return self._day_matches(t.date()) and t.hour in self.hours and t.minute in self.minutes

    def next_after(self, when: float) -> float:
        """The first tick strictly after ``when`` (Unix seconds, UTC)."""
        start = dt.datetime.fromtimestamp(math.floor(when / 60) * 60 + 60, _UTC)
        day = start.date()
        for n in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in self.hours:
                    if n == 0 and hour < start.hour:
                        continue
                    for minute in self.minutes:
                        if n == 0 and hour == start.hour and minute < start.minute:
                            continue
                        return _epoch(day, hour, minute)
            day += dt.timedelta(days=1)
        raise ScheduleError(f"{self.text!r} never fires")  # parse() refuses such schedules

    def latest_at_or_before(self, when: float) -> float:
        """The last tick at or before ``when`` (Unix seconds, UTC)."""
        end = dt.datetime.fromtimestamp(math.floor(when / 60) * 60, _UTC)
        day = end.date()
        for n in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in reversed(self.hours):
                    if n == 0 and hour > end.hour:
                        continue
                    for minute in reversed(self.minutes):
                        if n == 0 and hour == end.hour and minute > end.minute:
                            continue
                        return _epoch(day, hour, minute)
            day -= dt.timedelta(days=1)
        raise ScheduleError(f"{self.text!r} never fires")


def _epoch(day: dt.date, hour: int, minute: int) -> float:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=_UTC).timestamp()


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"{name} {text!r}: an empty item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not step_text.isascii() or int(step_text) == 0:
                raise ScheduleError(f"{name} {text!r}: the step must be a number above 0")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = (
                _value(a, text, name, low, high, names),
                _value(b, text, name, low, high, names),
            )
            if first > last:
                raise ScheduleError(f"{name} {text!r}: the range {base} runs backwards")
        else:
            if slash:
                raise ScheduleError(f"{name} {text!r}: a step needs a range or * ({base}-{high}/n)")
            first = last = _value(base, text, name, low, high, names)
        values.update(range(first, last + 1, step))
    return values


def _value(word: str, text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if word.isdigit() and word.isascii():
        value = int(word)
        if not low <= value <= high:
            raise ScheduleError(f"{name} {text!r}: {value} is outside {low}-{high}")
        return value
    if word.upper() in names:
        return names.index(word.upper()) + low
    if word in ("?", "L", "W") or word[-1:] in ("L", "W") or "#" in word:
        raise ScheduleError(f"{name} {text!r}: {word!r} is not classic cron syntax")
    hint = f" or a name ({names[0]}-{names[-1]})" if names else ""
    raise ScheduleError(f"{name} {text!r}: {word!r} is not a number{hint}")

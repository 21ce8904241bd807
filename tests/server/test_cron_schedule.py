"""Cron schedules: classic five-field syntax and the @-names, in UTC; what is refused."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from werk.server._schedule import Schedule, ScheduleError

UTC = dt.timezone.utc


def at(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %a %H:%M")


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("*/5 * * * *", at(2025, 1, 1, 10, 3, 59), "2025-01-01 Wed 10:05"),
        ("*/5 * * * *", at(2025, 1, 1, 10, 5), "2025-01-01 Wed 10:10"),  # strictly after
        ("12 * * * *", at(2025, 1, 1, 23, 30), "2025-01-02 Thu 00:12"),
        ("30 */6 * * *", at(2025, 1, 1, 6, 31), "2025-01-01 Wed 12:30"),
        ("0 13 * * *", at(2025, 12, 31, 14), "2026-01-01 Thu 13:00"),
        ("0 0 29 2 *", at(2025, 3, 1), "2028-02-29 Tue 00:00"),
        ("0 9 * * 0", at(2025, 1, 1), "2025-01-05 Sun 09:00"),
        ("0 9 * * 7", at(2025, 1, 1), "2025-01-05 Sun 09:00"),  # 7 is Sunday too
        ("0 9 * * sun", at(2025, 1, 1), "2025-01-05 Sun 09:00"),
        ("0 9 * * MON-FRI", at(2025, 1, 3, 10), "2025-01-06 Mon 09:00"),
        ("0 9 * * 5-7", at(2025, 1, 4, 10), "2025-01-05 Sun 09:00"),
        ("0 0 1 jan,Jul *", at(2025, 1, 2), "2025-07-01 Tue 00:00"),
        ("0 0 13 * 5", at(2025, 1, 4), "2025-01-10 Fri 00:00"),  # day OR weekday
        ("0 0 */10 * 5", at(2025, 1, 4), "2025-01-31 Fri 00:00"),  # "*..." day: both (Vixie)
        ("0 0 1-31/10 * 5", at(2025, 1, 4), "2025-01-10 Fri 00:00"),
        ("0 0 1-31/10 * 5", at(2025, 1, 10), "2025-01-11 Sat 00:00"),  # the 11th: a day
        ("5,10-12,40-50/5 * * * *", at(2025, 1, 1, 0, 12), "2025-01-01 Wed 00:40"),
        ("@yearly", at(2025, 6, 1), "2026-01-01 Thu 00:00"),
        ("@annually", at(2025, 6, 1), "2026-01-01 Thu 00:00"),
        ("@monthly", at(2025, 6, 1), "2025-07-01 Tue 00:00"),
        ("@weekly", at(2025, 1, 1), "2025-01-05 Sun 00:00"),
        ("@daily", at(2025, 1, 1), "2025-01-02 Thu 00:00"),
        ("@midnight", at(2025, 1, 1), "2025-01-02 Thu 00:00"),
        ("@HOURLY", at(2025, 1, 1, 0, 0, 1), "2025-01-01 Wed 01:00"),
    ],
)
def test_next_tick(schedule: str, after: float, expected: str) -> None:
    s = Schedule.parse(schedule)
    nxt = s.next_after(after)
    assert iso(nxt) == expected
    assert s.matches(nxt)
    assert s.latest_at_or_before(nxt) == nxt
    assert s.latest_at_or_before(nxt - 1) < nxt


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("* * * *", "4 fields; a schedule has five"),
        ("0 * * * * *", "6 fields"),
        ("0 0 * * * * 2025", "7 fields"),
        ("@every 5m", "@every is not a cron schedule"),
        ("@reboot", "@reboot is not a cron schedule"),
        ("@daily 5", "@daily is not a cron schedule"),
        ("CRON_TZ=Europe/Berlin 0 0 * * *", "time zone"),
        ("TZ=UTC 0 0 * * *", "time zone"),
        ("60 * * * *", "minute '60': 60 is outside 0-59"),
        ("* 24 * * *", "hour '24': 24 is outside 0-23"),
        ("* * 0 * *", "day of month '0': 0 is outside 1-31"),
        ("* * * 13 *", "month '13'"),
        ("* * * * 8", "day of week '8'"),
        ("* * ? * *", "'?' is not classic cron syntax"),
        ("* * L * *", "'L' is not classic cron syntax"),
        ("* * 15W * *", "'15W' is not classic cron syntax"),
        ("* * * * 5#2", "'5#2' is not classic cron syntax"),
        ("*/0 * * * *", "the step must be a number above 0"),
        ("5/15 * * * *", "a step needs a range"),
        ("10-5 * * * *", "runs backwards"),
        ("1,,2 * * * *", "an empty item"),
        ("* * * * FRI-SUN", "runs backwards"),
        ("* * * * funday", "'funday' is not a number or a name (SUN-SAT)"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("", "0 fields"),
    ],
)
def test_refused(schedule: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)):
        Schedule.parse(schedule)


def test_february_30_is_fine_when_a_weekday_may_match() -> None:
    # Both restricted: either matches, so the weekday keeps it alive.
    s = Schedule.parse("0 0 30 2 1")
    assert iso(s.next_after(at(2025, 1, 1))) == "2025-02-03 Mon 00:00"


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    item = st.one_of(
        number.map(str),
        st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}"),
        st.tuples(number, number, st.integers(1, 9)).map(
            lambda p: f"{min(p[:2])}-{max(p[:2])}/{p[2]}"
        ),
        st.integers(1, 20).map(lambda n: f"*/{n}"),
    )
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


schedules = st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 7)).map(
    " ".join
)
moments = st.floats(at(2000, 1, 1), at(2090, 1, 1))


def _parsed(text: str) -> Schedule | None:
    try:
        return Schedule.parse(text)
    except ScheduleError as exc:
        assert "never fires" in str(exc)
        return None


@settings(max_examples=300, deadline=None)
@given(schedules, moments)
def test_next_and_latest_agree(text: str, when: float) -> None:
    s = _parsed(text)
    if s is None:
        return
    nxt = s.next_after(when)
    latest = s.latest_at_or_before(when)
    assert latest <= when < nxt
    assert nxt % 60 == 0 and latest % 60 == 0
    assert s.matches(nxt) and s.matches(latest)
    assert s.next_after(latest) == nxt  # no tick in between
    assert s.latest_at_or_before(nxt - 0.001) == latest


@settings(max_examples=200, deadline=None)
@given(schedules, moments)
def test_the_next_tick_is_the_first_matching_minute(text: str, when: float) -> None:
    s = _parsed(text)
    if s is None:
        return
    nxt = s.next_after(when)
    minute = (when // 60) * 60 + 60
    for _ in range(3 * 1440):  # brute force over three days at most
        if minute > nxt:
            break
        assert s.matches(minute) == (minute == nxt)
        if minute == nxt:
            break
        minute += 60


@given(st.integers(0, 6), moments)
def test_sunday_is_0_and_7(day: int, when: float) -> None:
    names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
    a = Schedule.parse(f"0 12 * * {day}")
    b = Schedule.parse(f"0 12 * * {names[day].lower()}")
    assert a.next_after(when) == b.next_after(when)
    weekday = dt.datetime.fromtimestamp(a.next_after(when), UTC).isoweekday() % 7
    assert weekday == day
    if day == 0:
        assert Schedule.parse("0 12 * * 7").next_after(when) == a.next_after(when)

"""Numbers, times and page windows as the pages write them."""

from __future__ import annotations

import pytest

from werk._humanize import (
    ago,
    args_preview,
    compact,
    delimited,
    duration,
    exact_time,
    rss,
    to_timestamp,
)
from werk.web._backend import DayCount
from werk.web._charts import history_chart, nice_step
from werk.web._paging import Pager


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1k"),
        (1234, "1.2k"),
        (12_345, "12k"),
        (5_600_000, "5.6M"),
        (7_800_000_000, "7.8B"),
        (-1500, "-1.5k"),
    ],
)
def test_compact(value: int, text: str) -> None:
    assert compact(value) == text


def test_delimited() -> None:
    assert delimited(1234567) == "1,234,567"
    assert delimited(12) == "12"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (0, "just now"),
        (9, "just now"),
        (45, "45 seconds ago"),
        (60, "1 minute ago"),
        (180, "3 minutes ago"),
        (7200, "2 hours ago"),
        (86400 * 3, "3 days ago"),
        (-120, "in 2 minutes"),
        (-86400 * 400, "in 1 year"),
    ],
)
def test_ago(delta: float, text: str) -> None:
    assert ago(1_000_000.0, now=1_000_000.0 + delta) == text


def test_times_from_rfc3339_and_junk() -> None:
    assert to_timestamp("1970-01-01T00:01:00Z") == 60.0
    assert to_timestamp("2026-11-28T21:42:52.284616+02:00") == pytest.approx(
        to_timestamp("2026-11-28T19:42:52.284616Z")
    )
    assert to_timestamp("yesterday") is None
    assert to_timestamp(None) is None
    assert ago("not a time", now=0) == "-"
    assert exact_time("1970-01-01T00:01:00.25Z") == "1970-01-01 00:01:00.250 UTC"
    assert exact_time("") == ""


def test_rss_and_duration() -> None:
    assert rss(0) == "-"
    assert rss(812) == "812 KB"
    assert rss(48812) == "47.7 MB"
    assert rss(3 * 1024 * 1024) == "3.0 GB"
    assert duration(42) == "42s"
    assert duration(303) == "5m 3s"
    assert duration(7800) == "2h 10m"
    assert duration(93784) == "1d 2h"


def test_args_preview_cuts_long_args_and_keeps_text() -> None:
    assert args_preview([1, "a"]) == '1, "a"'
    assert args_preview(["<script>"]) == '"<script>"'  # escaping is the template's job
    long = args_preview(["x" * 500], limit=50)
    assert len(long) == 50 and long.endswith("\u2026")


def test_pager_windows() -> None:
    p = Pager.from_query("3", total=120)
    assert (p.offset, p.pages, p.has_prev, p.has_next) == (50, 5, True, True)
    assert (p.first_item, p.last_item) == (51, 75)
    assert Pager.from_query("junk").page == 1
    assert Pager.from_query("-4").page == 1
    assert Pager.from_query("99").with_total(30).page == 2
    assert Pager.from_query("1", total=0).pages == 1


def test_history_chart_scales_to_round_ticks() -> None:
    assert nice_step(4600) == 2000
    assert nice_step(3) == 1
    days = [DayCount("2025-01-01", 4600, 100), DayCount("2025-01-02", 0, 0)]
    chart = history_chart(days)
    assert chart.max_value == 6000
    assert [t.label for t in chart.y_ticks] == ["0", "2k", "4k", "6k"]
    assert chart.total_processed == 4600 and chart.total_failed == 100
    tall, empty = chart.bars
    assert tall.h_processed > tall.h_failed > 0
    assert empty.h_processed == 0
    assert tall.title == "2025-01-01: 4,600 processed, 100 failed"
    assert history_chart([]).bars == []

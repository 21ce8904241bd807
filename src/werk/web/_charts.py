"""The dashboard's history graph, drawn on the server as inline SVG (no chart library).

:func:`history_chart` turns daily counts into coordinates in a fixed ``viewBox``; the template
only writes them out, and CSS colours them for the light or dark theme.

Example::

    >>> chart = history_chart([DayCount("2025-01-01", 10, 1), DayCount("2025-01-02", 30, 0)])
    >>> chart.max_value, [t.label for t in chart.y_ticks][-1]
    (30, '30')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from werk._humanize import compact
from werk.web._backend import DayCount

__all__ = ["Bar", "Chart", "Tick", "history_chart", "nice_step"]

WIDTH = 1000
HEIGHT = 200
PAD_LEFT = 0
PAD_BOTTOM = 22
PAD_TOP = 0


@dataclass(frozen=True)
class Tick:
    """An axis mark: position in the viewBox and its text."""

    pos: float
    label: str


@dataclass(frozen=True)
class Bar:
    """One day: a processed bar with its failed part overlaid, plus a hover title."""

    x: float
    width: float
    y_processed: float
    h_processed: float
    y_failed: float
    h_failed: float
    title: str


@dataclass(frozen=True)
class Chart:
    """Everything the template needs to draw the history graph."""

    width: int
    height: int
    left: int
    bottom: float
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    max_value: int
    total_processed: int
    total_failed: int


def nice_step(value: float, intervals: int = 4) -> int:
    """A round tick step (1, 2 or 5 x 10^n) so that ``intervals`` steps reach ``value``."""
    raw = max(value / intervals, 1.0)
    exp = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if step * exp >= raw:
            return int(step * exp)
    return int(10 * exp)  # pragma: no cover - the loop always returns


def history_chart(days: Sequence[DayCount]) -> Chart:
    """Lay out daily processed/failed counts (oldest first) as bars in a 1000x200 viewBox."""
    bottom = float(HEIGHT - PAD_BOTTOM)
    plot_h = bottom - PAD_TOP
    plot_w = WIDTH - PAD_LEFT
    peak = max((max(d.processed, d.failed) for d in days), default=0)
    step = nice_step(peak)
    top = max(math.ceil(peak / step), 1) * step
    n = max(len(days), 1)
    slot = plot_w / n
    gap = min(slot * 0.2, 4.0)
    bars: list[Bar] = []
    for i, d in enumerate(days):
        hp = plot_h * d.processed / top
        hf = plot_h * d.failed / top
        bars.append(
            Bar(
                x=round(PAD_LEFT + i * slot + gap / 2, 2),
                width=round(max(slot - gap, 1.0), 2),
                y_processed=round(bottom - hp, 2),
                h_processed=round(hp, 2),
                y_failed=round(bottom - hf, 2),
                h_failed=round(hf, 2),
                title=f"{d.day}: {d.processed:,} processed, {d.failed:,} failed",
            )
        )
    y_ticks = [
        Tick(round(bottom - plot_h * k * step / top, 2), compact(k * step))
        for k in range(top // step + 1)
    ]
    # Evenly spread date labels (first and last included); the page spaces them evenly too.
    k = min(len(days), 7)
    picks = sorted({round(i * (len(days) - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]
    x_ticks = [Tick(round(PAD_LEFT + (i + 0.5) * slot, 2), days[i].day[5:]) for i in picks if days]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=PAD_LEFT,
        bottom=bottom,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        max_value=top,
        total_processed=sum(d.processed for d in days),
        total_failed=sum(d.failed for d in days),
    )

"""What the benchmarks' tables share: medians of interleaved rounds, and a row's cells
with the ratio of the last value to the first."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping


def medians(samples: Mapping[str, Iterable[float]]) -> dict[str, float]:
    """``{name: median}`` of ``{name: values}``."""
    return {name: statistics.median(values) for name, values in samples.items()}


def cells(values: list[float | None], width: int, fmt: str) -> str:
    """The values right-aligned in ``width`` (``-`` where one is missing), then, when there
    are several, the last over the first (``now / before``, ``werk / external``)."""
    out = "".join(f" {'-':>{width}}" if v is None else f" {v:>{width}{fmt}}" for v in values)
    if len(values) > 1:
        first, last = values[0], values[-1]
        ratio = f"{last / first:.2f}" if first and last is not None else "-"
        out += f" {ratio:>{width}}"
    return out

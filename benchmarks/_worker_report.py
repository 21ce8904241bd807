"""worker.py's tables: the rows of each executor and mode, side by side for each source
tree, and how they compare with the loops and with ``--external`` workers."""

from __future__ import annotations

from collections.abc import Iterator

from _table import medians

LOOP = "fetch+ack loop, 1 conn"


def median(rows: list[dict[str, float]]) -> dict[str, float]:
    return medians({key: [r[key] for r in rows] for key in rows[0]})


def heading(sources: list[str], width: int, columns: str, compared: str) -> None:
    print(f"{'':24}" + "".join(f" {name:-^{width}}" for name in sources))
    print(f"{'':24}" + columns * len(sources) + (f"  {compared}" if len(sources) == 2 else ""))


def table_rows(executors: list[str], mode_list: list[str]) -> Iterator[tuple[str, str, str]]:
    """(executor, mode, the row's label padded) for each row of a table."""
    for ex in executors:
        for mode in mode_list:
            label = f"{ex} {mode}" if mode == "none" else f"  +{mode}"
            yield ex, mode, f"{label:24}"


def report(
    results: dict[tuple[str, str, str], list[dict[str, float]]],
    loops: dict[str, list[dict[str, float]]],
    executors: list[str],
    mode_list: list[str],
    sources: list[str],
    header: str,
) -> None:
    print(header)
    for name, rows in loops.items():
        row = median(rows)
        print(
            f"{name}: {row['rate']:.0f} jobs/s, client {row['steady_us']:.0f}us CPU per job,"
            f" server {row['steady_srv_us']:.0f}us"
        )
    loop = median(loops[LOOP])
    columns = f" {'jobs/s':>7} {'vs loop':>7} {'vs none':>7} {'wkr CPU':>8} {'+CPU':>7}"
    heading(sources, 41, columns, "now/before")
    for ex, mode, line in table_rows(executors, mode_list):
        rates = []
        for source in sources:
            row = median(results[(ex, mode, source)])
            plain = median(results[(ex, "none", source)])
            rates.append(row["steady_rate"])
            line += (
                f" {row['steady_rate']:7.0f} {row['steady_rate'] / loop['rate']:6.2f}x"
                f" {row['steady_rate'] / plain['steady_rate'] - 1:+7.1%}"
                f" {row['steady_us']:6.0f}us {row['steady_us'] - plain['steady_us']:+5.0f}us"
            )
        if len(rates) == 2:
            line += f"  {rates[0] / rates[1] - 1:+10.1%}"
        print(line)
    print(
        "(steady state, after the first 20% of the jobs; jobs/s and CPU are medians of the"
        " rounds;\n wkr CPU = CPU time per job of the worker process and its live children;"
        " vs none / +CPU:\n against the same executor without middleware, same source tree)"
    )


def versus_external(
    results: dict[tuple[str, str, str], list[dict[str, float]]],
    ext: dict[str, float],
    label: str,
    executors: list[str],
    sources: list[str],
) -> None:
    print(f"\nwerk / {label} (jobs/s above 1: werk faster; CPU per job below 1: werk cheaper)")
    for ex in executors:
        for source in sources:
            row = median(results[(ex, "none", source)])
            print(
                f"  {ex + ' ' + source:22} jobs/s {row['steady_rate'] / ext['rate']:5.2f}x"
                f"  CPU {row['steady_us'] / ext['steady_us']:5.2f}x"
            )


def report_instructions(
    counts: dict[tuple[str, str, str], float],
    executors: list[str],
    mode_list: list[str],
    sources: list[str],
    n: int,
) -> None:
    print(f"\ninstructions per job of the worker process (callgrind; runs of {n} and {2 * n})")
    heading(sources, 19, f" {'Ir/job':>9} {'+Ir':>9}", "now-before")
    for ex, mode, line in table_rows(executors, mode_list):
        for source in sources:
            count, plain = counts[(ex, mode, source)], counts[(ex, "none", source)]
            line += f" {count / 1e3:8.1f}k {(count - plain) / 1e3:+8.1f}k"
        if len(sources) == 2:
            now, before = (counts[(ex, mode, source)] for source in sources)
            line += f"  {(now - before) / 1e3:+9.1f}k"
        print(line)

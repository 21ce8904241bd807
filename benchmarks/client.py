"""Client throughput and client CPU per job, werk's sync and asyncio clients next to
hand-written socket code, and optionally next to another version of werk, in one run.

Usage::

    python benchmarks/client.py                         # default sizes
    python benchmarks/client.py --quick                 # a smoke run (CI)
    python benchmarks/client.py --baseline ../old/src   # before/after, side by side
    python benchmarks/client.py --instructions --baseline ../old/src   # callgrind counts
    python benchmarks/client.py --url tcp://127.0.0.1:7519   # against another server
    python benchmarks/client.py --external go='./bench-client'   # next to another client

Rows: PUSH one job at a time, PUSHB of 1,000 jobs a batch (the jobs built in the loop, as
an application does) and FETCH + ACK on one connection, for ``werk.Client`` and
``werk.AsyncClient`` (also on uvloop when it is installed). Each measurement runs in a
fresh child process, importing werk from this tree or from ``--baseline`` (another
``src`` directory, e.g. ``git archive`` of an older commit), so ``time.process_time()``
there is that client's CPU alone; the server (``werk server`` in another process, unless
``--url`` or ``FAKTORY_URL`` names one, e.g. a real Faktory) is FLUSHed before each
measurement: never point this at a server whose data you need.

The variants take turns, round after round, so that other load on the machine slows them
alike; each figure is the median of the rounds. The raw rows are the least a Python
client can do (no validation, no error handling): their CPU per job is the floor, and
``vs raw`` is each client's CPU over it. The asyncio raw row is a minimal protocol with a
future per command: an awaited command costs an event loop two turns, which bounds what
any asyncio client can do one command at a time.

``--instructions`` counts instructions per job instead, under valgrind's callgrind (runs
of N and 2N jobs, the difference over N: start-up cancels out), which the machine's other
load does not change: one round, a small N (default 1,000).

``--external LABEL=COMMAND`` (repeatable) adds a client that is not werk's, built
elsewhere, as one more row of each group, run in the same rounds against the same
server: the harness FLUSHes the server (and for ``fetch+ack`` queues the jobs, 100 more
than N, as for werk's rows), then runs COMMAND through the shell with FAKTORY_URL,
BENCH_ROW (``push``, ``pushb``: PUSHB of 1,000 jobs a batch, or ``fetch+ack``),
BENCH_JOBS (N) and BENCH_QUEUE (``bench``) in its environment. It prints one JSON line,
``{"jobs_per_s": float, "cpu_us_per_job": float}``: its own rate and its own CPU per
job. A last table gives werk's rows over it (not under ``--instructions``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import _callgrind
import _external
from _client_rows import QUEUE, ROWS, UVLOOP, child, dumper, jid
from _raw import Raw
from _server import Server, address

HERE = Path(__file__).resolve()
SRC = str(HERE.parents[1] / "src")


@contextmanager
def server_url(url: str | None) -> Iterator[str]:
    """``url``, else a werk server (this tree, memory storage) in a child process."""
    if url:
        yield url
        return
    server = Server("memory", SRC)
    try:
        yield server.url
    finally:
        server.close()


def prepare(url: str, group: str, jobs: int) -> None:
    """FLUSH, and for fetch+ack queue the jobs to fetch (the warm-up's too)."""
    c = Raw(address(url))
    c.call(b"FLUSH\r\n")
    if group == "fetch+ack":
        dumps = dumper()
        for start in range(0, jobs + 100, 1000):
            size = min(1000, jobs + 100 - start)
            batch = [
                {"jid": jid(), "jobtype": "Bench", "args": [i], "queue": QUEUE} for i in range(size)
            ]
            c.call(b"PUSHB " + dumps(batch) + b"\r\n")
    c.sock.sendall(b"END\r\n")
    c.sock.close()


def measure(url: str, name: str, loop: str, src: str, n: int) -> tuple[float, float]:
    """(jobs per second, client CPU microseconds per job) of one child run."""
    env = dict(os.environ, PYTHONPATH=src)
    cmd = [sys.executable, str(HERE), "--child", name, loop, url, str(n)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{name} ({src}) failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return n / result["wall"], result["cpu"] / n * 1e6


def instructions(url: str, group: str, name: str, loop: str, src: str, n: int) -> float:
    """Instructions per job of a child run (callgrind: runs of n and 2n, the difference)."""
    env = dict(os.environ, PYTHONPATH=src)

    def count(size: int) -> int:
        prepare(url, group, size)
        argv = [sys.executable, str(HERE), "--child", name, loop, url, str(size)]
        return _callgrind.run(argv, env)[0]

    return _callgrind.per_job(count, n)


def report_instructions(
    url: str, runs: list[tuple[str, str, str, str, str]], trees: dict[str, str], n: int
) -> None:
    """Count and print instructions per job of every run (one round)."""
    sizes = {"push": n, "pushb": max(1000, n * 10 // 1000 * 1000), "fetch+ack": n}
    counts: dict[tuple[str, str, str], float] = {}
    for group, label, name, loop, tree in runs:
        counts[(group, label, tree)] = instructions(
            url, group, name, loop, trees.get(tree, SRC), sizes[group]
        )
        print(f"{group} {label} {tree}: {counts[(group, label, tree)]:,.0f}", file=sys.stderr)
    print(
        "instructions per job (callgrind; runs of N and 2N jobs, "
        f"N = {sizes['push']}, PUSHB {sizes['pushb']})"
    )
    cols = list(trees)
    print(
        f"{'row':<10} {'client':<36}"
        + "".join(f" {t + ' Ir/job':>16}" for t in cols)
        + (f" {'now/before':>11}" if len(cols) > 1 else "")
    )
    seen: set[tuple[str, str]] = set()
    for group, label, _, _, tree in runs:
        if (group, label) in seen:
            continue
        seen.add((group, label))
        line = f"{group:<10} {label:<36}"
        if tree == "raw":
            line += f" {counts[(group, label, 'raw')]:>16,.0f}"
        else:
            values = [counts[(group, label, t)] for t in cols]
            line += "".join(f" {v:>16,.0f}" for v in values)
            if len(values) > 1:
                line += f" {values[-1] / values[0]:>10.2f}x"
        print(line)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, two rounds (smoke)")
    parser.add_argument("--baseline", help="source tree (src/) of the werk to compare with")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, --quick 2)")
    parser.add_argument("--jobs", type=int, help="jobs per measurement (PUSHB: x10)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per job under callgrind instead (one round, N 1000)",
    )
    parser.add_argument("--url", help="the server to use (default: FAKTORY_URL, else werk's)")
    _external.add_option(parser, "one more row of each group")
    opts = parser.parse_args()
    url = opts.url or os.environ.get("FAKTORY_URL")
    n = opts.jobs or (200 if opts.quick else 1000 if opts.instructions else 2000)
    rounds = opts.rounds or (2 if opts.quick else 5)
    sizes = {"push": n, "pushb": max(1000, n * 10 // 1000 * 1000), "fetch+ack": n}
    trees = {"now": SRC}
    if opts.baseline:
        trees = {"before": os.path.abspath(opts.baseline), "now": SRC}
    try:
        import uvloop  # noqa: F401

        loops = ["asyncio", "uvloop"]
    except ImportError:
        loops = ["asyncio"]
    runs: list[tuple[str, str, str, str, str]] = []  # (group, label, name, loop, tree)
    for group, client, _, kind in ROWS:
        for loop in loops if client in UVLOOP else loops[:1]:
            label = client + (", uvloop" if loop == "uvloop" else "")
            for tree in trees if kind == "werk" else ["raw"]:
                runs.append((group, label, f"{group}/{client}", loop, tree))
        if client == [row[1] for row in ROWS if row[0] == group][-1]:  # the group's last
            runs += [(group, label, command, "", "ext") for label, command in opts.external]
    samples: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    if opts.instructions:
        if opts.external:
            print("(--external rows are not counted under --instructions)", file=sys.stderr)
        with server_url(url) as url:
            report_instructions(url, [run for run in runs if run[4] != "ext"], trees, n)
        return
    with server_url(url) as url:
        for r in range(rounds):
            for group, label, name, loop, tree in runs:
                prepare(url, group, sizes[group])
                if tree == "ext":  # name: the command
                    got = _external.run(name, url, group, sizes[group], QUEUE)
                    result = got["jobs_per_s"], got["cpu_us_per_job"]
                else:
                    result = measure(url, name, loop, trees.get(tree, SRC), sizes[group])
                samples.setdefault((group, label, tree), []).append(result)
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)

    def med(group: str, label: str, tree: str) -> tuple[float, float]:
        got = samples[(group, label, tree)]
        return statistics.median(s[0] for s in got), statistics.median(s[1] for s in got)

    print(
        f"werk client benchmark: {sizes['push']} jobs per measurement "
        f"(PUSHB {sizes['pushb']}), median of {rounds} rounds, server {url}"
    )
    print("CPU: the client process only, microseconds per job; vs raw: CPU over the raw row's")
    cols = [t for t in trees]
    head = "".join(f" {t + ' jobs/s':>13} {t + ' CPU':>10} {'vs raw':>7}" for t in cols)
    if len(cols) > 1:
        head += f" {'jobs/s x':>9} {'CPU x':>6}"
    print(f"{'row':<10} {'client':<36}{head}")
    seen: set[tuple[str, str]] = set()
    for group, label, _, loop, tree in runs:
        if (group, label) in seen:
            continue
        seen.add((group, label))
        raw_label = "raw asyncio protocol" if "Async" in label else "raw socket"
        if loop == "uvloop":
            raw_label += ", uvloop"
        if tree == "raw":
            raw_label = label
        elif tree == "ext" or (group, raw_label, "raw") not in samples:
            raw_label = "raw socket"
        floor = med(group, raw_label, "raw")[1]
        line = f"{group:<10} {label:<36}"
        values = []
        for t in cols if tree not in ("raw", "ext") else [tree]:
            rate, cpu = med(group, label, t)
            values.append((rate, cpu))
            line += f" {rate:>13,.0f} {cpu:>10.1f} {cpu / floor:>6.2f}x"
        if tree in ("raw", "ext") and len(cols) > 1:
            line += " " * (32 * (len(cols) - 1))
        if len(values) > 1:
            line += f" {values[-1][0] / values[0][0]:>8.2f}x {values[-1][1] / values[0][1]:>5.2f}x"
        print(line)
    if len(cols) > 1:
        print("jobs/s x: now / before (above 1 = faster); CPU x: now / before (below 1 = cheaper)")
    if opts.external:
        versus_external(runs, med)


def versus_external(
    runs: list[tuple[str, str, str, str, str]],
    med: Callable[[str, str, str], tuple[float, float]],
) -> None:
    """Each werk row (this tree) of a group over each external row of the same group."""
    print("\nwerk / external (now; jobs/s x above 1 = werk faster, CPU x below 1 = cheaper)")
    print(f"{'row':<10} {'client':<36} {'external':<12} {'jobs/s x':>9} {'CPU x':>7}")
    externals = [(group, label) for group, label, _, _, tree in runs if tree == "ext"]
    for group, label, _, _, tree in runs:
        if tree != "now":
            continue
        rate, cpu = med(group, label, "now")
        for ext_group, ext_label in externals:
            if ext_group == group:
                ext_rate, ext_cpu = med(group, ext_label, "ext")
                print(
                    f"{group:<10} {label:<36} {ext_label:<12}"
                    f" {rate / ext_rate:>8.2f}x {cpu / ext_cpu:>6.2f}x"
                )


if __name__ == "__main__":
    main()

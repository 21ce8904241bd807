"""Client throughput and client CPU per job, werk's sync and asyncio clients next to
hand-written socket code, and optionally next to another version of werk, in one run.

Usage::

    python benchmarks/client.py                         # default sizes
    python benchmarks/client.py --quick                 # a smoke run (CI)
    python benchmarks/client.py --baseline ../old/src   # before/after, side by side
    python benchmarks/client.py --instructions --baseline ../old/src   # callgrind counts
    FAKTORY_URL=tcp://localhost:7419 python benchmarks/client.py

Rows: PUSH one job at a time, PUSHB of 1,000 jobs a batch (the jobs built in the loop, as
an application does) and FETCH + ACK on one connection, for ``werk.Client`` and
``werk.AsyncClient`` (also on uvloop when it is installed). Each measurement runs in a
fresh child process, importing werk from this tree or from ``--baseline`` (another
``src`` directory, e.g. ``git archive`` of an older commit), so ``time.process_time()``
there is that client's CPU alone; the server (werk's embedded server in another process,
unless ``FAKTORY_URL`` names one) is FLUSHed before each measurement: never point this at
a server whose data you need.

The variants take turns, round after round, so that other load on the machine slows them
alike; each figure is the median of the rounds. The raw rows are the least a Python
client can do (no validation, no error handling): their CPU per job is the floor, and
``vs raw`` is each client's CPU over it. The asyncio raw row is a minimal protocol with a
future per command: an awaited command costs an event loop two turns, which bounds what
any asyncio client can do one command at a time.

``--instructions`` counts instructions per job instead, under valgrind's callgrind (runs
of N and 2N jobs, the difference over N: start-up cancels out), which the machine's other
load does not change: one round, a small N (default 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _callgrind
from _raw import Raw, RawAsync
from _server import Server, address

HERE = Path(__file__).resolve()
SRC = str(HERE.parents[1] / "src")
QUEUE = "bench"

# -- the measured code (runs in a child process) -------------------------------------------


def _jid() -> str:
    return base64.urlsafe_b64encode(os.urandom(12)).decode()


def _dumps() -> Callable[[Any], bytes]:
    try:
        import orjson

        return orjson.dumps  # type: ignore[no-any-return]
    except ImportError:
        return lambda obj: json.dumps(obj, separators=(",", ":")).encode()


def _loads() -> Callable[[bytes], Any]:
    try:
        import orjson

        return orjson.loads  # type: ignore[no-any-return]
    except ImportError:
        return json.loads


def raw_push(url: str, n: int) -> Callable[[], None]:
    c, dumps = Raw(address(url)), _dumps()

    def run() -> None:
        for i in range(n):
            job = {"jid": _jid(), "jobtype": "Bench", "args": [i]}
            if c.call(b"PUSH " + dumps(job) + b"\r\n") != b"+OK":
                raise RuntimeError("push failed")

    return run


def raw_pushb(url: str, n: int) -> Callable[[], None]:
    c, dumps = Raw(address(url)), _dumps()

    def run() -> None:
        for _ in range(0, n, 1000):
            jobs = [{"jid": _jid(), "jobtype": "Bench", "args": [i]} for i in range(1000)]
            if c.call(b"PUSHB " + dumps(jobs) + b"\r\n") != b"{}":
                raise RuntimeError("push failed")

    return run


def raw_fetch_ack(url: str, n: int) -> Callable[[], None]:
    c, loads = Raw(address(url)), _loads()
    fetch = f"FETCH {QUEUE}\r\n".encode()

    def run() -> None:
        for _ in range(n):
            job = loads(c.call(fetch))
            if c.call(b'ACK {"jid":"' + job["jid"].encode() + b'"}\r\n') != b"+OK":
                raise RuntimeError("ack failed")

    return run


def client_push(url: str, n: int) -> Callable[[], None]:
    import werk

    client = werk.Client(url)
    client.connect()

    def run() -> None:
        for i in range(n):
            client.push("Bench", i)

    return run


def client_pushb(url: str, n: int) -> Callable[[], None]:
    import werk

    client = werk.Client(url)
    client.connect()

    def run() -> None:
        for _ in range(0, n, 1000):
            if client.push_bulk([werk.Job("Bench", [i]) for i in range(1000)]):
                raise RuntimeError("push failed")

    return run


def client_fetch_ack(url: str, n: int) -> Callable[[], None]:
    import werk

    client = werk.Client(url)
    client.connect()

    def run() -> None:
        for _ in range(n):
            job = client.fetch(QUEUE)
            assert job is not None
            client.ack(job)

    return run


def raw_async_push(url: str, n: int) -> Callable[[], Awaitable[None]]:
    dumps = _dumps()

    async def run() -> None:
        c = await RawAsync.open(address(url))
        started()
        for i in range(n):
            job = {"jid": _jid(), "jobtype": "Bench", "args": [i]}
            if await c.call(b"PUSH " + dumps(job) + b"\r\n") != b"+OK":
                raise RuntimeError("push failed")

    return run


def raw_async_fetch_ack(url: str, n: int) -> Callable[[], Awaitable[None]]:
    loads = _loads()
    fetch = f"FETCH {QUEUE}\r\n".encode()

    async def run() -> None:
        c = await RawAsync.open(address(url))
        started()
        for _ in range(n):
            job = loads(await c.call(fetch))
            if await c.call(b'ACK {"jid":"' + job["jid"].encode() + b'"}\r\n') != b"+OK":
                raise RuntimeError("ack failed")

    return run


def async_push(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import werk

    async def run() -> None:
        async with werk.AsyncClient(url) as client:
            started()
            for i in range(n):
                await client.push("Bench", i)

    return run


def async_push_concurrent(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import werk

    async def run() -> None:
        async with werk.AsyncClient(url) as client:
            started()
            for start in range(0, n, 100):
                await asyncio.gather(*(client.push("Bench", i) for i in range(start, start + 100)))

    return run


def async_pushb(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import werk

    async def run() -> None:
        async with werk.AsyncClient(url) as client:
            started()
            for _ in range(0, n, 1000):
                if await client.push_bulk([werk.Job("Bench", [i]) for i in range(1000)]):
                    raise RuntimeError("push failed")

    return run


def async_fetch_ack(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import werk

    async def run() -> None:
        async with werk.AsyncClient(url) as client:
            started()
            for _ in range(n):
                job = await client.fetch(QUEUE)
                assert job is not None
                await client.ack(job)

    return run


_clock: list[float] = []


def started() -> None:
    """The measured part of an asyncio case begins (after connecting)."""
    _clock[:] = [time.perf_counter(), time.process_time()]


# (group, client, case, kind): kind "raw" runs once; "werk" once per source tree.
Case = Callable[[str, int], Callable[[], Any]]
ROWS: list[tuple[str, str, Case, str]] = [
    ("push", "raw socket", raw_push, "raw"),
    ("push", "Client.push", client_push, "werk"),
    ("push", "raw asyncio protocol", raw_async_push, "raw"),
    ("push", "AsyncClient.push", async_push, "werk"),
    ("push", "AsyncClient.push, 100 concurrent", async_push_concurrent, "werk"),
    ("pushb", "raw socket", raw_pushb, "raw"),
    ("pushb", "Client.push_bulk(Jobs)", client_pushb, "werk"),
    ("pushb", "AsyncClient.push_bulk(Jobs)", async_pushb, "werk"),
    ("fetch+ack", "raw socket", raw_fetch_ack, "raw"),
    ("fetch+ack", "Client.fetch + ack", client_fetch_ack, "werk"),
    ("fetch+ack", "raw asyncio protocol", raw_async_fetch_ack, "raw"),
    ("fetch+ack", "AsyncClient.fetch + ack", async_fetch_ack, "werk"),
]
UVLOOP = {
    "raw asyncio protocol",
    "AsyncClient.push",
    "AsyncClient.push_bulk(Jobs)",
    "AsyncClient.fetch + ack",
}


def child(name: str, loop: str, url: str, n: int) -> None:
    """Run one case ``n`` jobs (after a warm-up) and print its wall and CPU seconds."""
    case = {f"{group}/{client}": case for group, client, case, _ in ROWS}[name]
    warm = case(url, 1000 if name.startswith("pushb/") else min(n, 100))
    run = case(url, n)
    if asyncio.iscoroutinefunction(run):
        runner: Callable[[Any], Any] = asyncio.run
        if loop == "uvloop":
            import uvloop

            runner = uvloop.run
        runner(warm())
        runner(run())
        wall, cpu = time.perf_counter() - _clock[0], time.process_time() - _clock[1]
    else:
        warm()
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu}))


# -- the driver ----------------------------------------------------------------------------


@contextmanager
def server_url() -> Iterator[str]:
    """FAKTORY_URL, else a werk server (this tree, memory storage) in a child process."""
    url = os.environ.get("FAKTORY_URL")
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
        dumps = _dumps()
        for start in range(0, jobs + 100, 1000):
            size = min(1000, jobs + 100 - start)
            batch = [
                {"jid": _jid(), "jobtype": "Bench", "args": [i], "queue": QUEUE}
                for i in range(size)
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
    opts = parser.parse_args()
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
    samples: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    if opts.instructions:
        with server_url() as url:
            report_instructions(url, runs, trees, n)
        return
    with server_url() as url:
        for r in range(rounds):
            for group, label, name, loop, tree in runs:
                prepare(url, group, sizes[group])
                src = trees.get(tree, SRC)
                result = measure(url, name, loop, src, sizes[group])
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
        elif (group, raw_label, "raw") not in samples:  # no asyncio PUSHB floor: the socket's
            raw_label = "raw socket"
        floor = med(group, raw_label, "raw")[1]
        line = f"{group:<10} {label:<36}"
        values = []
        for t in cols if tree != "raw" else ["raw"]:
            rate, cpu = med(group, label, t)
            values.append((rate, cpu))
            line += f" {rate:>13,.0f} {cpu:>10.1f} {cpu / floor:>6.2f}x"
        if tree == "raw" and len(cols) > 1:
            line += " " * (32 * (len(cols) - 1))
        if len(values) > 1:
            line += f" {values[-1][0] / values[0][0]:>8.2f}x {values[-1][1] / values[0][1]:>5.2f}x"
        print(line)
    if len(cols) > 1:
        print("jobs/s x: now / before (above 1 = faster); CPU x: now / before (below 1 = cheaper)")


if __name__ == "__main__":
    main()

"""server.py's ``--memory``, ``--backlog`` and ``--backlog-in-process``: what a queued job
costs in memory, and what pushes and fetches cost behind a backlog."""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time

from _inproc import Dispatcher
from _raw import Raw, fat_job, raw_fetch_ack, raw_push
from _server import Server
from _table import medians


def fill(address: tuple[str, int], n: int, batch: int = 1000) -> None:
    """PUSHB ``n`` jobs of 100 bytes of args into ``default`` (the prefix keeps jids apart)."""
    c = Raw(address)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        jobs = [fat_job(start + i, "q") for i in range(size)]
        c.sock.sendall(b"PUSHB " + json.dumps(jobs).encode() + b"\r\n")
        c.reply()


def memory_per_job(sources: dict[str, str | None], n: int) -> None:
    """Resident bytes per queued job: the server's RSS before and after ``n`` jobs with
    100 bytes of args (the mean over ``n``; the allocator's slack is in it too)."""
    print(f"\n{'bytes per queued job':30}" + "".join(f" {v:>12}" for v in sources))
    for storage in ("memory", "sqlite"):
        row = f"{storage:30}"
        for src in sources.values():
            server = Server(storage, src)
            try:
                fill(server.address, 2_000)  # warm up: caches, the first fold
                time.sleep(1.5)
                before = server.rss()
                fill(server.address, n)
                time.sleep(2.5)  # the last fold
                row += f" {(server.rss() - before) / n:>12.0f}"
            finally:
                server.close()
        print(row)


def backlog(sources: dict[str, str | None], n: int, storage: str, rounds: int) -> None:
    """Push and fetch+ack rates of one connection on an empty queue and behind a
    backlog of ``n`` queued jobs: two servers of each tree, one filled, measured in turns
    (which goes first alternates). The pushed jobs go to the end of the backlog; the
    fetches take its head. Also the server's CPU per job, steadier than rates on a busy
    machine."""
    size = 3_000
    for variant, src in sources.items():
        empty, full = Server(storage, src), Server(storage, src)
        try:
            started = time.perf_counter()
            fill(full.address, n)
            took = time.perf_counter() - started
            time.sleep(2.0)  # the last fold
            rates: dict[str, list[float]] = {}
            costs: dict[str, list[float]] = {}
            for r in range(rounds):
                pair = [("empty", empty), ("backlog", full)]
                for label, server in pair if r % 2 == 0 else pair[::-1]:
                    for what, fn in (("push", raw_push), ("fetch+ack", raw_fetch_ack)):
                        before = server.cpu() or 0.0
                        rates.setdefault(f"{what} {label}", []).append(fn(server.address, size))
                        time.sleep(0.05)
                        used = ((server.cpu() or 0.0) - before) / size * 1e6
                        costs.setdefault(f"{what} {label}", []).append(used)
            rss = full.rss()
        finally:
            empty.close()
            full.close()
        med, cpu = medians(rates), medians(costs)
        print(
            f"\n{variant} ({storage}): {n:,} queued in {took:.0f} s, server RSS "
            f"{rss / 2**20:.0f} MiB; medians of {rounds} rounds"
        )
        for what in ("push", "fetch+ack"):
            e, b = med[f"{what} empty"], med[f"{what} backlog"]
            ce, cb = cpu[f"{what} empty"], cpu[f"{what} backlog"]
            print(
                f"  {what:10} jobs/s empty {e:>7,.0f} backlog {b:>7,.0f} ({b / e:.2f}x); "
                f"server CPU us/job empty {ce:.0f} backlog {cb:.0f} ({cb / ce:.2f}x)"
            )


def backlog_in_process(n: int, storage: str, rounds: int) -> None:
    """The server's own CPU per lone push and per fetch+ack (each committed alone, as
    for one client), in this process, on an empty queue and behind ``n`` queued jobs:
    two managers, measured in turns (which goes first alternates), medians. Steadier
    than rates over sockets on a busy machine."""
    tmp = tempfile.TemporaryDirectory()
    sides = {
        side: Dispatcher(storage, os.path.join(tmp.name, side + ".sqlite3"))
        for side in ("empty", "backlog")
    }
    full = sides["backlog"]
    started = time.perf_counter()
    batches = [[fat_job(i, "q") for i in range(s, min(n, s + 1000))] for s in range(0, n, 1000)]
    pushbs = [b"PUSHB " + json.dumps(jobs).encode() for jobs in batches]
    full.pushes(pushbs, commit=True)
    if storage == "sqlite":
        full.store.fold()
    print(f"{n:,} queued ({storage}) in {time.perf_counter() - started:.0f} s")
    size = 5_000
    cost: dict[str, list[float]] = {}
    gc.collect()
    gc.disable()
    for r in range(rounds):
        order = ["empty", "backlog"] if r % 2 == 0 else ["backlog", "empty"]
        for label in order:
            side = sides[label]
            lines = [b"PUSH " + json.dumps(fat_job(i, f"r{r}")).encode() for i in range(size)]
            took = side.pushes(lines, commit=True, clock=time.process_time)[0]
            cost.setdefault(f"push {label}", []).append(took / size)
            took = side.fetch_acks(b"default", size, commit=True, clock=time.process_time)
            cost.setdefault(f"fetch+ack {label}", []).append(took / size)
    gc.enable()
    med = medians(cost)
    for what in ("push", "fetch+ack"):
        e, b = med[f"{what} empty"] * 1e6, med[f"{what} backlog"] * 1e6
        print(f"  {what:10} CPU us/job empty {e:6.1f}  backlog {b:6.1f}  ({b / e:.2f}x)")
    for side in sides.values():
        side.store.close()
    tmp.cleanup()

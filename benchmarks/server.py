"""Throughput of werk's embedded server: single PUSH, PUSHB, FETCH+ACK, memory vs SQLite.

The server runs as a separate process (``python -m werk server``, uvloop when installed)
so that the benchmark's clients do not share its interpreter. Clients: raw sockets (the
least client overhead possible) and werk's own ``werk.Client`` when it is importable.

Usage::

    python benchmarks/server.py            # default sizes
    python benchmarks/server.py --quick    # a smoke run
    python benchmarks/server.py --baseline ../old/src   # before/after, side by side
    python benchmarks/server.py --extension            # no extension vs a do-nothing one
    python benchmarks/server.py --memory 200000        # resident bytes per queued job
    python benchmarks/server.py --backlog 5000000      # push/fetch behind a backlog
    python benchmarks/server.py --asyncio              # the servers without uvloop

``--baseline`` runs a second server from another source tree (e.g. ``git archive`` of an
older commit) next to the current one; each measurement alternates between the two, so
that a busy machine slows both alike. ``--extension`` compares, the same way, ``werk
server`` as it is (its standard extensions: unique, expiring, throttles, cron) and the
same server with a do-nothing extension in their place (every per-job hook overridden, so
each is called where it applies): the "custom" rows are jobs with a ``custom`` object,
the ones the hooks see. ``benchmarks/unique.py`` measures unique and expiring jobs.

``--memory N`` pushes N jobs with 100 bytes of args (by PUSHB) into each storage and
prints the server's resident memory growth per job. ``--backlog N`` runs two servers of
each tree, fills one with N such jobs, then times lone pushes and fetch+ack on one
connection against both in turns (the median of ``--rounds``): a backlog should cost
nothing, queues being deques and SQLite reading a fetched job by its id.

Reference (real Faktory 1.10, Go + Redis): ~11,000 single pushes/s, 25,000-36,000 jobs/s
by PUSHB from one connection, ~2,800 fetch+ack/s on one connection.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from _raw import Raw

REFERENCE = {
    "push (1 conn)": 11_000,
    "pushb x1000 (1 conn)": 30_000,
    "fetch+ack (1 conn)": 2_800,
}


NOOP = "noop"  # a variant's source: this tree, with a do-nothing extension

# How the servers are started: ``python -m werk`` (uvloop when installed), or with
# ``--asyncio`` the same CLI with uvloop made unimportable (the standard library's loop).
_NO_UVLOOP = (
    "import sys; sys.modules['uvloop'] = None; sys.argv[0] = 'werk'; "
    "from werk.cli import main; raise SystemExit(main())"
)
RUN_WERK = ["-m", "werk"]


def _has_no_web(src: str | None) -> bool:
    """Whether the tree's ``werk server`` takes ``--no-web`` (both sides must say it)."""
    if src is None:
        return True
    try:
        with open(os.path.join(src, "werk", "cli", "_server.py")) as f:
            return "--no-web" in f.read()
    except OSError:
        return False


class Server:
    """``werk server`` in a child process (``pythonpath``: another tree, or :data:`NOOP`)."""

    def __init__(self, storage: str, pythonpath: str | None = None) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        if pythonpath == NOOP:
            cmd = [sys.executable, __file__, "--serve-with-noop-extension", storage, self.tmp.name]
            pythonpath = None
        else:
            cmd = [sys.executable, *RUN_WERK, "server", "--bind", "127.0.0.1:0"]
            cmd += ["--storage", storage, "--data", self.tmp.name]
            if _has_no_web(pythonpath):  # older trees have none (and serve no pages anyway)
                cmd.append("--no-web")
        env = dict(os.environ)
        env.pop("FAKTORY_PASSWORD", None)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # the start-up log line names the bound port
            m = re.search(r"listening on tcp://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise RuntimeError("server did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def cpu(self) -> float | None:
        """CPU seconds the server process has used (Linux), else None."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self) -> int:
        """The server process's resident memory in bytes (Linux), else 0."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(300)  # a big backlog takes a while to fold and checkpoint
        self.tmp.cleanup()


def job(i: int, prefix: str = "j") -> dict[str, object]:
    return {"jid": f"{prefix}-{i:012d}", "jobtype": "Bench", "args": [i, "payload"]}


ARGS_100 = ["x" * 96]  # 100 bytes of JSON: the "job with 100 bytes of args"


def fat_job(i: int, prefix: str = "f") -> dict[str, object]:
    return {"jid": f"{prefix}-{i:012d}", "jobtype": "Bench", "args": ARGS_100}


def custom_job(i: int, prefix: str = "c") -> dict[str, object]:
    return {**job(i, prefix), "queue": "custom", "custom": {"trace": f"t-{i}"}}


def raw_push(port: int, n: int, make: Callable[[int, str], dict[str, object]] = job) -> float:
    c = Raw(port)
    lines = [b"PUSH " + json.dumps(make(i, "p")).encode() + b"\r\n" for i in range(n)]
    start = time.perf_counter()
    for line in lines:
        c.sock.sendall(line)
        c.line()
    return n / (time.perf_counter() - start)


def raw_push_many(port: int, n: int, conns: int = 8) -> float:
    per = n // conns
    clients = [Raw(port) for _ in range(conns)]

    def run(k: int) -> None:
        c = clients[k]
        for i in range(per):
            c.sock.sendall(b"PUSH " + json.dumps(job(i, f"m{k}")).encode() + b"\r\n")
            c.line()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(conns)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per * conns / (time.perf_counter() - start)


def raw_pushb(port: int, n: int, batch: int = 1000) -> float:
    c = Raw(port)
    lines = [
        b"PUSHB " + json.dumps([job(i + b, "b") for i in range(batch)]).encode() + b"\r\n"
        for b in range(0, n, batch)
    ]
    start = time.perf_counter()
    for line in lines:
        c.sock.sendall(line)
        c.reply()
    return len(lines) * batch / (time.perf_counter() - start)


def raw_push_custom(port: int, n: int) -> float:
    return raw_push(port, n, custom_job)


def raw_fetch_ack_custom(port: int, n: int) -> float:
    return raw_fetch_ack(port, n, b"custom")


def raw_fetch_ack(port: int, n: int, queue: bytes = b"default") -> float:
    c = Raw(port)
    start = time.perf_counter()
    for _ in range(n):
        c.sock.sendall(b"FETCH " + queue + b"\r\n")
        body = c.reply()
        jid = body[body.index(b'"jid":"') + 7 :].split(b'"', 1)[0]
        c.sock.sendall(b'ACK {"jid":"' + jid + b'"}\r\n')
        c.line()
    return n / (time.perf_counter() - start)


def client_push(port: int, n: int) -> float:
    import werk

    with werk.Client(f"tcp://127.0.0.1:{port}") as client:
        start = time.perf_counter()
        for i in range(n):
            client.push("Bench", i, "payload")
        return n / (time.perf_counter() - start)


def client_pushb(port: int, n: int, batch: int = 1000) -> float:
    import werk

    with werk.Client(f"tcp://127.0.0.1:{port}") as client:
        batches = [
            [werk.Job("Bench", args=[i, "payload"]) for i in range(batch)]
            for _ in range(0, n, batch)
        ]
        start = time.perf_counter()
        for jobs in batches:
            client.push_bulk(jobs)
        return len(batches) * batch / (time.perf_counter() - start)


def client_fetch_ack(port: int, n: int) -> float:
    import werk

    with werk.Client(f"tcp://127.0.0.1:{port}") as client:
        start = time.perf_counter()
        for _ in range(n):
            job_ = client.fetch("default")
            assert job_ is not None
            client.ack(job_.jid)
        return n / (time.perf_counter() - start)


# The fetch rows and the queue each one empties.
_FETCHES: dict[Callable[[int, int], float], str] = {
    raw_fetch_ack: "default",
    raw_fetch_ack_custom: "custom",
    client_fetch_ack: "default",
}


def measure(
    storage: str,
    sizes: dict[str, int],
    with_client: bool,
    sources: dict[str, str | None],
    cpu: dict[str, dict[str, float]],
    rounds: int = 1,
    only: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """``{variant: {benchmark: jobs/s}}`` (medians of ``rounds``; rows whose name holds a
    word of ``only``, if given); the variants' servers run side by side. The
    server's CPU microseconds per job go into ``cpu`` (``{variant: {benchmark: us}}``):
    unlike jobs/s, they hardly move when other processes load the machine."""
    plan: list[tuple[str, Callable[[int, int], float], int]] = [
        ("push (1 conn)", raw_push, sizes["push"]),
        ("push (8 conns)", raw_push_many, sizes["push"]),
        ("pushb x1000 (1 conn)", raw_pushb, sizes["pushb"]),
        ("fetch+ack (1 conn)", raw_fetch_ack, sizes["fetch"]),
        ("push custom (1 conn)", raw_push_custom, sizes["fetch"]),
        ("fetch+ack custom (1 conn)", raw_fetch_ack_custom, sizes["fetch"]),
    ]
    if with_client:
        plan += [
            ("werk.Client push", client_push, sizes["push"]),
            ("werk.Client push_bulk x1000", client_pushb, sizes["pushb"]),
            ("werk.Client fetch+ack", client_fetch_ack, sizes["fetch"]),
        ]
    if only:
        plan = [row for row in plan if any(word in row[0] for word in only)]
    servers = {variant: Server(storage, src) for variant, src in sources.items()}
    rates: dict[str, dict[str, list[float]]] = {variant: {} for variant in sources}
    costs: dict[str, dict[str, list[float]]] = {variant: {} for variant in sources}
    try:
        for _ in range(rounds):  # rounds of every row, the variants taking turns
            for name, fn, n in plan:
                for variant, server in servers.items():
                    if fn in _FETCHES:  # (filled by the push rows, unless --only left them out)
                        top_up(server.port, _FETCHES[fn], n)
                    before = server.cpu()
                    rates[variant].setdefault(name, []).append(fn(server.port, n))
                    time.sleep(0.05)  # the last replies' commits
                    after = server.cpu()
                    if before is not None and after is not None:
                        used = (after - before) / n * 1e6
                        costs[variant].setdefault(name, []).append(used)
    finally:
        for server in servers.values():
            server.close()
    for variant, by_name in costs.items():
        cpu[variant] = {name: statistics.median(v) for name, v in by_name.items()}
    return {
        variant: {name: statistics.median(v) for name, v in by_name.items()}
        for variant, by_name in rates.items()
    }


def top_up(port: int, queue: str, n: int) -> None:
    """Push jobs of the kind a fetch row of ``queue`` takes until ``n`` are queued there."""
    c = Raw(port)
    c.sock.sendall(b"INFO\r\n")
    have = json.loads(c.reply())["faktory"]["queues"].get(queue, 0)
    c.sock.close()
    if have < n:
        make = custom_job if queue == "custom" else job
        raw_push(port, n - have, make)


def fill(port: int, n: int, batch: int = 1000) -> None:
    """PUSHB ``n`` jobs of :data:`ARGS_100` into ``default`` (the prefix keeps jids apart)."""
    c = Raw(port)
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
                fill(server.port, 2_000)  # warm up: caches, the first fold
                time.sleep(1.5)
                before = server.rss()
                fill(server.port, n)
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
            fill(full.port, n)
            took = time.perf_counter() - started
            time.sleep(2.0)  # the last fold
            rates: dict[str, list[float]] = {}
            costs: dict[str, list[float]] = {}
            for r in range(rounds):
                pair = [("empty", empty), ("backlog", full)]
                for label, server in pair if r % 2 == 0 else pair[::-1]:
                    for what, fn in (("push", raw_push), ("fetch+ack", raw_fetch_ack)):
                        before = server.cpu() or 0.0
                        rates.setdefault(f"{what} {label}", []).append(fn(server.port, size))
                        time.sleep(0.05)
                        used = ((server.cpu() or 0.0) - before) / size * 1e6
                        costs.setdefault(f"{what} {label}", []).append(used)
            rss = full.rss()
        finally:
            empty.close()
            full.close()
        med = {k: statistics.median(v) for k, v in rates.items()}
        cpu = {k: statistics.median(v) for k, v in costs.items()}
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


def lone_pushes(state: Any, store: Any, lines: list[bytes]) -> float:
    """Seconds of CPU per PUSH, each committed alone (the dispatcher, no socket)."""
    from werk.server._dispatch import dispatch

    start = time.process_time()
    for line in lines:
        dispatch(state, line)
        store.flush()
    return (time.process_time() - start) / len(lines)


def lone_fetch_acks(state: Any, store: Any, n: int) -> float:
    """Seconds of CPU per FETCH + ACK of the default queue, each committed alone."""
    from werk.server._dispatch import dispatch

    start = time.process_time()
    for _ in range(n):
        dispatch(state, b"FETCH default")
        res = state.fetched
        state.fetched = None
        store.flush()
        dispatch(state, b'ACK {"jid":"' + res.jid.encode() + b'"}')
        store.flush()
    return (time.process_time() - start) / n


def backlog_in_process(n: int, storage: str, rounds: int) -> None:
    """The server's own CPU per lone push and per fetch+ack (each committed alone, as
    for one client), in this process, on an empty queue and behind ``n`` queued jobs:
    two managers, measured in turns (which goes first alternates), medians. Steadier
    than rates over sockets on a busy machine."""
    import gc

    from werk.server._clock import ManualClock
    from werk.server._dispatch import ClientState, ServerStats, dispatch
    from werk.server._manager import Manager
    from werk.server._periodic import PeriodicTasks
    from werk.server._storage import MemoryStorage, SQLiteStorage, Storage

    tmp = tempfile.TemporaryDirectory()

    def make(name: str) -> tuple[Storage, ClientState]:
        store: Storage = (
            SQLiteStorage(os.path.join(tmp.name, name + ".sqlite3"))
            if storage == "sqlite"
            else MemoryStorage()
        )
        m = Manager(store, ManualClock(1_700_000_000))
        return store, ClientState(m, ServerStats(0.0), PeriodicTasks(m), "w")

    sides = {"empty": make("empty"), "backlog": make("backlog")}
    store, state = sides["backlog"]
    started = time.perf_counter()
    for start in range(0, n, 1000):
        jobs = [fat_job(i, "q") for i in range(start, min(n, start + 1000))]
        dispatch(state, b"PUSHB " + json.dumps(jobs).encode())
        store.flush()
    if isinstance(store, SQLiteStorage):
        store.fold()
    print(f"{n:,} queued ({storage}) in {time.perf_counter() - started:.0f} s")
    size = 5_000
    cost: dict[str, list[float]] = {}
    gc.collect()
    gc.disable()
    for r in range(rounds):
        order = ["empty", "backlog"] if r % 2 == 0 else ["backlog", "empty"]
        for label in order:
            store, state = sides[label]
            lines = [b"PUSH " + json.dumps(fat_job(i, f"r{r}")).encode() for i in range(size)]
            cost.setdefault(f"push {label}", []).append(lone_pushes(state, store, lines))
            cost.setdefault(f"fetch+ack {label}", []).append(lone_fetch_acks(state, store, size))
    gc.enable()
    for what in ("push", "fetch+ack"):
        e = statistics.median(cost[f"{what} empty"]) * 1e6
        b = statistics.median(cost[f"{what} backlog"]) * 1e6
        print(f"  {what:10} CPU us/job empty {e:6.1f}  backlog {b:6.1f}  ({b / e:.2f}x)")
    for store, _ in sides.values():
        store.close()
    tmp.cleanup()


def noop_extension() -> object:
    """A server extension overriding every per-job hook with nothing: what it costs is
    the calls themselves (and decoding a job with ``custom`` for the FETCH hook)."""
    from werk.server._extension import Extension

    class Noop(Extension):
        def check_push(self, job):  # type: ignore[no-untyped-def]
            return None

        def pushed(self, job):  # type: ignore[no-untyped-def]
            pass

        def fetch(self, job, queue, wid):  # type: ignore[no-untyped-def]
            return None

        def reserved(self, res, job):  # type: ignore[no-untyped-def]
            pass

        def acked(self, res, job):  # type: ignore[no-untyped-def]
            pass

        def failed(self, res, job, outcome):  # type: ignore[no-untyped-def]
            pass

        def released(self, res, reason):  # type: ignore[no-untyped-def]
            pass

    return Noop()


def serve_with_noop_extension(storage: str, data_dir: str) -> None:
    """Run this tree's server with a do-nothing extension (a child of ``--extension``)."""
    import asyncio
    import logging
    from pathlib import Path

    from werk.cli._server import serve
    from werk.server._config import ServerConfig

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = ServerConfig(bind="127.0.0.1:0", storage=storage, data_dir=Path(data_dir))
    runner = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    runner(serve(config, None, extensions=[noop_extension()]))  # type: ignore[list-item]


IN_PROCESS = (
    "push",
    "push custom",
    "fetch+ack",
    "fetch+ack custom",
    "sqlite push",
    "sqlite fetch+ack",
)


def in_process_child(kind: str, n: int) -> None:
    """Time the dispatcher alone (memory storage, no socket), print us/job as JSON."""
    import gc

    try:  # this tree
        from werk.server._clock import ManualClock
        from werk.server._dispatch import ClientState, ServerStats, dispatch
        from werk.server._manager import Manager
        from werk.server._periodic import PeriodicTasks
        from werk.server._storage import MemoryStorage
    except ImportError:  # a tree from before the private modules
        from werk.server.clock import ManualClock  # type: ignore[no-redef]
        from werk.server.commands import (  # type: ignore[no-redef]
            ClientState,
            ServerStats,
            dispatch,
        )
        from werk.server.manager import Manager  # type: ignore[no-redef]
        from werk.server.storage import MemoryStorage  # type: ignore[no-redef]

        PeriodicTasks = None  # type: ignore[assignment,misc]
    options: dict[str, object] = {"extensions": [noop_extension()]} if kind == NOOP else {}
    m = Manager(MemoryStorage(), ManualClock(1_700_000_000), **options)  # type: ignore[arg-type]
    state = (
        ClientState(m, ServerStats(0.0), PeriodicTasks(m), "w")  # type: ignore[call-arg]
        if PeriodicTasks is not None
        else ClientState(m, ServerStats(0.0), "w")  # type: ignore[call-arg]
    )
    out: dict[str, float] = {}
    for i in range(2000):  # warm up: caches, the once-per-second time formats
        dispatch(state, b"PUSH " + json.dumps(job(i, "w")).encode())
        dispatch(state, b"FETCH default")
        state.fetched = None
    gc.disable()
    for name, queue, make in (("", "default", job), (" custom", "custom", custom_job)):
        lines = [b"PUSH " + json.dumps(make(i, "i")).encode() for i in range(n)]
        start = time.perf_counter()
        for line in lines:
            dispatch(state, line)
        out["push" + name] = (time.perf_counter() - start) / n * 1e6
        fetch = b"FETCH " + queue.encode()
        start = time.perf_counter()
        for _ in range(n):
            dispatch(state, fetch)
            res = state.fetched
            state.fetched = None
            dispatch(state, b'ACK {"jid":"' + res.jid.encode() + b'"}')
        out["fetch+ack" + name] = (time.perf_counter() - start) / n * 1e6
    out.update(in_process_sqlite(n))
    print(json.dumps(out))


def in_process_sqlite(n: int) -> dict[str, float]:
    """The dispatcher over SQLite storage, each command committed alone (one journal
    record each, as for a lone client; folds in place): us/job of CPU."""
    import gc

    from werk.server._clock import ManualClock
    from werk.server._dispatch import ClientState, ServerStats
    from werk.server._manager import Manager
    from werk.server._periodic import PeriodicTasks
    from werk.server._storage import SQLiteStorage

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStorage(os.path.join(tmp, "werk.sqlite3"))
        m = Manager(store, ManualClock(1_700_000_000))
        state = ClientState(m, ServerStats(0.0), PeriodicTasks(m), "w")
        out: dict[str, float] = {}
        lines = [b"PUSH " + json.dumps(fat_job(i, "s")).encode() for i in range(n)]
        gc.disable()
        out["sqlite push"] = lone_pushes(state, store, lines) * 1e6
        store.fold()  # what waits in a queue has been folded
        out["sqlite fetch+ack"] = lone_fetch_acks(state, store, n) * 1e6
        gc.enable()
        store.close()
    return out


def in_process(sources: dict[str, str | None], n: int, rounds: int) -> dict[str, dict[str, float]]:
    """The best of ``rounds`` in-process runs per variant, the variants taking turns."""
    best: dict[str, dict[str, float]] = {v: dict.fromkeys(IN_PROCESS, 1e9) for v in sources}
    for _ in range(rounds):
        for variant, src in sources.items():
            env = dict(os.environ)
            if src not in (None, NOOP):
                env["PYTHONPATH"] = src
            cmd = [sys.executable, __file__, "--in-process-child", str(src), str(n)]
            result = json.loads(
                subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            )
            for name, value in result.items():
                best[variant][name] = min(best[variant][name], value)
    return best


def main() -> None:
    if sys.argv[1:2] == ["--serve-with-noop-extension"]:
        serve_with_noop_extension(*sys.argv[2:4])
        return
    if sys.argv[1:2] == ["--in-process-child"]:
        in_process_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--baseline", default=None, help="source tree (src/) of the version to compare with"
    )
    which.add_argument(
        "--extension", action="store_true", help="no extension vs a do-nothing extension"
    )
    parser.add_argument(
        "--memory", type=int, metavar="N", help="only: RSS per queued job, N jobs of 100 bytes"
    )
    parser.add_argument(
        "--backlog", type=int, metavar="N", help="only: push/fetch behind N queued jobs"
    )
    parser.add_argument(
        "--backlog-in-process", type=int, metavar="N", help="only: CPU per job behind N, no sockets"
    )
    parser.add_argument("--storage", default="sqlite", help="storage for --backlog")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (medians are shown)")
    parser.add_argument(
        "--only", nargs="+", metavar="WORD", help="only the rows whose name holds a WORD"
    )
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process rows")
    parser.add_argument(
        "--asyncio", action="store_true", help="servers on asyncio's own loop, not uvloop"
    )
    opts = parser.parse_args()
    if opts.asyncio:
        RUN_WERK[:] = ["-c", _NO_UVLOOP]
    sizes = (
        {"push": 2_000, "pushb": 10_000, "fetch": 1_000}
        if opts.quick
        else {"push": 20_000, "pushb": 100_000, "fetch": 10_000}
    )
    try:
        import werk

        with_client = hasattr(werk, "Client")
    except ImportError:
        with_client = False
    sources: dict[str, str | None] = {"now": None}
    if opts.baseline:
        sources = {"before": os.path.abspath(opts.baseline), "now": None}
    elif opts.extension:
        sources = {"none": None, NOOP: NOOP}
    if opts.memory:
        memory_per_job(sources, opts.memory)
        return
    if opts.backlog_in_process:
        backlog_in_process(opts.backlog_in_process, opts.storage, max(opts.rounds, 3))
        return
    if opts.backlog:
        backlog(sources, opts.backlog, opts.storage, max(opts.rounds, 3))
        return
    variants = list(sources)  # the first is the reference, the last is "now"
    now_v = variants[-1]
    cpu: dict[str, dict[str, dict[str, float]]] = {"memory": {}, "sqlite": {}}
    table = {
        st: measure(st, sizes, with_client, sources, cpu[st], opts.rounds, opts.only)
        for st in ("memory", "sqlite")
    }
    names = list(table["memory"][now_v])
    cols = (*variants, "x") if len(variants) > 1 else (now_v,)
    head = "".join(f" {st + ' ' + col:>12}" for st in ("memory", "sqlite") for col in cols)
    print(f"\n{'jobs/s':30}{head} {now_v + ' sql/mem':>11} {'Faktory':>8}")
    for name in names:
        row = f"{name:30}"
        for st in ("memory", "sqlite"):
            values = [table[st][v][name] for v in variants]
            row += "".join(f" {v:>12,.0f}" for v in values)
            if len(values) > 1:
                row += f" {values[-1] / values[0]:>12.2f}"
        ratio = table["sqlite"][now_v][name] / table["memory"][now_v][name]
        ref = REFERENCE.get(name)
        ref_text = f"{ref:>8,}" if ref else f"{'':>8}"
        print(f"{row} {ratio:>11.2f} {ref_text}")
    if cpu["memory"].get(now_v):
        head = "".join(f" {st + ' ' + col:>13}" for st in ("memory", "sqlite") for col in cols)
        print(f"\n{'server CPU us/job':30}{head}")
        for name in names:
            row = f"{name:30}"
            for st in ("memory", "sqlite"):
                values = [cpu[st][v][name] for v in variants]
                row += "".join(f" {v:>13.1f}" for v in values)
                if len(values) > 1:
                    row += f" {values[-1] / values[0]:>13.2f}"
            print(row)
    print("\nFaktory column: real Faktory 1.10 (Go + Redis, not durable), one connection.")
    if len(variants) > 1:
        print(f"x: {now_v} / {variants[0]} (jobs/s: above 1 = faster; CPU: below 1 = cheaper).")
    if opts.no_in_process:
        return
    # The steadiest number on a busy machine: the server's own work per job, no sockets.
    steady = in_process(sources, sizes["fetch"] * 2, 3 if opts.quick else 7)
    head = "".join(f" {col:>12}" for col in cols)
    print(f"\n{'in-process us/job (best)':30}{head}")
    for name in IN_PROCESS:
        values = [steady[v][name] for v in variants]
        row = "".join(f" {v:>12.2f}" for v in values)
        if len(values) > 1:
            row += f" {values[-1] / values[0]:>12.2f}"
        print(f"{name:30}{row}")


if __name__ == "__main__":
    main()

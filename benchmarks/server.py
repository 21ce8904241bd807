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
    python benchmarks/server.py --url tcp://127.0.0.1:7519 --server-pid PID  # vs another
    python benchmarks/server.py --external go='./bench-client'   # rows of another client

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

``--url URL`` measures a server that is not werk's, already running at URL (e.g. a real
Faktory), next to werk's own in the same rounds: its columns come first (``url``), and
``x`` is werk / it. It is measured in the memory pass and again in the SQLite pass, and
everything queued on every server is FLUSHed at the start of each round (never point
this at a server whose data you need). Its CPU per job is shown only with
``--server-pid PID`` (its process on this machine); the in-process rows, ``--memory``
and ``--backlog`` need werk's own servers and are left out.

``--external LABEL=COMMAND`` (repeatable) adds rows ``LABEL push``, ``LABEL pushb`` and
``LABEL fetch+ack``: a client program that is not werk's (built elsewhere), run in the
same rounds against the same servers. COMMAND runs through the shell with FAKTORY_URL
(the server under test), BENCH_ROW (``push``: single PUSHes, ``pushb``: PUSHB of 1,000
jobs a batch, ``fetch+ack``), BENCH_JOBS (N) and BENCH_QUEUE (``default``) in its
environment, the queue filled beforehand for ``fetch+ack`` as for the other fetch rows;
it prints one JSON line ``{"jobs_per_s": float, "cpu_us_per_job": float}``. Its jobs/s
are the row's, the server's CPU is measured as for every row (the program's own CPU is
not shown here: client.py compares clients); a last table gives ``werk.Client`` / it.

For a real Faktory, start one and pass ``--url`` (and ``--server-pid``): its figures from
another machine, or another hour of a shared one, say little about this run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import _external
from _backlog import backlog, backlog_in_process, memory_per_job
from _inproc import Dispatcher, best_of
from _raw import Raw, custom_job, fat_job, job, raw_fetch_ack, raw_push
from _server import NO_UVLOOP, NOOP, RUN_WERK, Remote, Server, address, flush
from _table import cells, medians


def raw_push_1(url: str, n: int) -> float:
    return raw_push(address(url), n)


def raw_push_many(url: str, n: int, conns: int = 8) -> float:
    per = n // conns
    clients = [Raw(address(url)) for _ in range(conns)]

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


def raw_pushb(url: str, n: int, batch: int = 1000) -> float:
    c = Raw(address(url))
    lines = [
        b"PUSHB " + json.dumps([job(i + b, "b") for i in range(batch)]).encode() + b"\r\n"
        for b in range(0, n, batch)
    ]
    start = time.perf_counter()
    for line in lines:
        c.sock.sendall(line)
        c.reply()
    return len(lines) * batch / (time.perf_counter() - start)


def raw_fetch_ack_1(url: str, n: int) -> float:
    return raw_fetch_ack(address(url), n)


def raw_push_custom(url: str, n: int) -> float:
    return raw_push(address(url), n, custom_job)


def raw_fetch_ack_custom(url: str, n: int) -> float:
    return raw_fetch_ack(address(url), n, b"custom")


def client_push(url: str, n: int) -> float:
    import werk

    with werk.Client(url) as client:
        start = time.perf_counter()
        for i in range(n):
            client.push("Bench", i, "payload")
        return n / (time.perf_counter() - start)


def client_pushb(url: str, n: int, batch: int = 1000) -> float:
    import werk

    with werk.Client(url) as client:
        batches = [
            [werk.Job("Bench", args=[i, "payload"]) for i in range(batch)]
            for _ in range(0, n, batch)
        ]
        start = time.perf_counter()
        for jobs in batches:
            client.push_bulk(jobs)
        return len(batches) * batch / (time.perf_counter() - start)


def client_fetch_ack(url: str, n: int) -> float:
    import werk

    with werk.Client(url) as client:
        start = time.perf_counter()
        for _ in range(n):
            job_ = client.fetch("default")
            assert job_ is not None
            client.ack(job_.jid)
        return n / (time.perf_counter() - start)


def external_row(command: str, row: str) -> Callable[[str, int], float]:
    """A row of ``--external``: the program's own jobs/s."""
    return lambda url, n: _external.run(command, url, row, n, "default")["jobs_per_s"]


def top_up(url: str, queue: str, n: int) -> None:
    """Push jobs of the kind a fetch row of ``queue`` takes until ``n`` are queued there."""
    c = Raw(address(url))
    have = json.loads(c.call(b"INFO\r\n"))["faktory"]["queues"].get(queue, 0)
    c.sock.close()
    if have < n:
        raw_push(address(url), n - have, custom_job if queue == "custom" else job)


def measure(
    storage: str,
    sizes: dict[str, int],
    with_client: bool,
    sources: dict[str, str | None],
    cpu: dict[str, dict[str, float]],
    rounds: int = 1,
    only: list[str] | None = None,
    remote: Remote | None = None,
    externals: list[tuple[str, str]] | None = None,
) -> dict[str, dict[str, float]]:
    """``{variant: {benchmark: jobs/s}}`` (medians of ``rounds``; rows whose name holds a
    word of ``only``, if given); the variants' servers run side by side, ``remote``
    (``--url``) first. The server's CPU microseconds per job go into ``cpu`` (``{variant:
    {benchmark: us}}``): unlike jobs/s, they hardly move when other processes load the
    machine."""
    # (name, function, jobs, the queue a fetch row empties: filled by the push rows,
    # unless --only left them out, and topped up to be sure)
    plan: list[tuple[str, Callable[[str, int], float], int, str | None]] = [
        ("push (1 conn)", raw_push_1, sizes["push"], None),
        ("push (8 conns)", raw_push_many, sizes["push"], None),
        ("pushb x1000 (1 conn)", raw_pushb, sizes["pushb"], None),
        ("fetch+ack (1 conn)", raw_fetch_ack_1, sizes["fetch"], "default"),
        ("push custom (1 conn)", raw_push_custom, sizes["fetch"], None),
        ("fetch+ack custom (1 conn)", raw_fetch_ack_custom, sizes["fetch"], "custom"),
    ]
    if with_client:
        plan += [
            ("werk.Client push", client_push, sizes["push"], None),
            ("werk.Client push_bulk x1000", client_pushb, sizes["pushb"], None),
            ("werk.Client fetch+ack", client_fetch_ack, sizes["fetch"], "default"),
        ]
    for label, command in externals or []:
        plan += [
            (f"{label} push", external_row(command, "push"), sizes["push"], None),
            (f"{label} pushb", external_row(command, "pushb"), sizes["pushb"], None),
            (f"{label} fetch+ack", external_row(command, "fetch+ack"), sizes["fetch"], "default"),
        ]
    if only:
        plan = [row for row in plan if any(word in row[0] for word in only)]
    servers: dict[str, Server | Remote] = {"url": remote} if remote else {}
    servers.update({variant: Server(storage, src) for variant, src in sources.items()})
    rates: dict[str, dict[str, list[float]]] = {variant: {} for variant in servers}
    costs: dict[str, dict[str, list[float]]] = {variant: {} for variant in servers}
    try:
        for _ in range(rounds):  # rounds of every row, the variants taking turns
            if remote:  # the same (empty) queues on every server, whatever was there
                for server in servers.values():
                    flush(server.url)
            for name, fn, n, queue in plan:
                for variant, server in servers.items():
                    if queue:
                        top_up(server.url, queue, n)
                    before = server.cpu()
                    rates[variant].setdefault(name, []).append(fn(server.url, n))
                    time.sleep(0.05)  # the last replies' commits
                    after = server.cpu()
                    if before is not None and after is not None:
                        used = (after - before) / n * 1e6
                        costs[variant].setdefault(name, []).append(used)
    finally:
        for server in servers.values():
            server.close()
    for variant, by_name in costs.items():
        cpu[variant] = medians(by_name)
    return {variant: medians(by_name) for variant, by_name in rates.items()}


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
    """Time the dispatcher alone, print us/job as JSON: memory storage (``kind`` NOOP: with
    the do-nothing extension), then SQLite storage with each command committed alone (one
    journal record each, as for a lone client; CPU time, folding in place)."""
    import gc

    d = Dispatcher(extensions=[noop_extension()] if kind == NOOP else ())
    d.warm_up()
    gc.disable()
    out: dict[str, float] = {}
    for name, queue, make in (("", "default", job), (" custom", "custom", custom_job)):
        lines = [b"PUSH " + json.dumps(make(i, "i")).encode() for i in range(n)]
        out["push" + name] = d.pushes(lines)[0] / n * 1e6
        out["fetch+ack" + name] = d.fetch_acks(queue.encode(), n) / n * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        d = Dispatcher("sqlite", os.path.join(tmp, "werk.sqlite3"))
        lines = [b"PUSH " + json.dumps(fat_job(i, "s")).encode() for i in range(n)]
        out["sqlite push"] = d.pushes(lines, True, time.process_time)[0] / n * 1e6
        d.store.fold()  # what waits in a queue has been folded
        out["sqlite fetch+ack"] = d.fetch_acks(b"default", n, True, time.process_time) / n * 1e6
        d.store.close()
    print(json.dumps(out))


def in_process(sources: dict[str, str | None], n: int, rounds: int) -> dict[str, dict[str, float]]:
    """The best of ``rounds`` in-process runs per variant, the variants taking turns."""
    return best_of(
        rounds,
        {
            variant: (
                [sys.executable, __file__, "--in-process-child", str(src), str(n)],
                None if src == NOOP else src,
            )
            for variant, src in sources.items()
        },
    )


def versus_external(
    table: dict[str, dict[str, dict[str, float]]], variants: list[str], label: str
) -> None:
    """``werk.Client`` rows over the ``--external`` rows of ``label``, server by server."""
    head = "".join(f" {st + ' ' + v:>12}" for st in ("memory", "sqlite") for v in variants)
    print(f"\n{'werk.Client / ' + label + ' (jobs/s)':30}{head}")
    for row, werk_row in (
        ("push", "werk.Client push"),
        ("pushb", "werk.Client push_bulk x1000"),
        ("fetch+ack", "werk.Client fetch+ack"),
    ):
        ratios = [
            f" {rates[werk_row] / rates[f'{label} {row}']:>12.2f}"
            for st in ("memory", "sqlite")
            for rates in (table[st][v] for v in variants)
            if werk_row in rates and f"{label} {row}" in rates
        ]
        if ratios:  # (unless --only left a row out)
            print(f"{row:30}" + "".join(ratios))


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
    which.add_argument(
        "--url", help="a running server that is not werk's (e.g. Faktory), next to werk's"
    )
    parser.add_argument(
        "--server-pid", type=int, metavar="PID", help="--url's server process, for its CPU"
    )
    _external.add_option(parser, "three more rows")
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
        RUN_WERK[:] = ["-c", NO_UVLOOP]
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
    if opts.url and (opts.memory or opts.backlog or opts.backlog_in_process):
        parser.error("--memory and --backlog measure werk's own servers: not with --url")
    remote = Remote(opts.url, opts.server_pid) if opts.url else None
    if opts.memory:
        memory_per_job(sources, opts.memory)
        return
    if opts.backlog_in_process:
        backlog_in_process(opts.backlog_in_process, opts.storage, max(opts.rounds, 3))
        return
    if opts.backlog:
        backlog(sources, opts.backlog, opts.storage, max(opts.rounds, 3))
        return
    # The first is the reference, the last is "now".
    variants = (["url"] if remote else []) + list(sources)
    now_v = variants[-1]
    cpu: dict[str, dict[str, dict[str, float]]] = {"memory": {}, "sqlite": {}}
    table = {
        st: measure(
            st, sizes, with_client, sources, cpu[st], opts.rounds, opts.only, remote, opts.external
        )
        for st in ("memory", "sqlite")
    }
    names = list(table["memory"][now_v])
    cols = (*variants, "x") if len(variants) > 1 else (now_v,)
    head = "".join(f" {st + ' ' + col:>12}" for st in ("memory", "sqlite") for col in cols)
    print(f"\n{'jobs/s':30}{head} {now_v + ' sql/mem':>11}")
    for name in names:
        row = f"{name:30}"
        for st in ("memory", "sqlite"):
            row += cells([table[st][v].get(name) for v in variants], 12, ",.0f")
        ratio = table["sqlite"][now_v][name] / table["memory"][now_v][name]
        print(f"{row} {ratio:>11.2f}")
    if cpu["memory"].get(now_v):
        head = "".join(f" {st + ' ' + col:>13}" for st in ("memory", "sqlite") for col in cols)
        print(f"\n{'server CPU us/job':30}{head}")
        for name in names:
            row = "".join(
                cells([cpu[st][v].get(name) for v in variants], 13, ".1f")
                for st in ("memory", "sqlite")
            )
            print(f"{name:30}{row}")
    if len(variants) > 1:
        print(f"x: {now_v} / {variants[0]} (jobs/s: above 1 = faster; CPU: below 1 = cheaper).")
    if remote:
        print(f"url: {opts.url}" + ("" if opts.server_pid else "; its CPU: give --server-pid"))
    if with_client:
        for label, _ in opts.external:
            versus_external(table, variants, label)
    if remote and not opts.no_in_process:
        print("\n(in-process rows: werk's own dispatcher, left out with --url)")
    if opts.no_in_process or remote:
        return
    # The steadiest number on a busy machine: the server's own work per job, no sockets.
    steady = in_process(sources, sizes["fetch"] * 2, 3 if opts.quick else 7)
    head = "".join(f" {col:>12}" for col in cols)
    print(f"\n{'in-process us/job (best)':30}{head}")
    for name in IN_PROCESS:
        print(f"{name:30}" + cells([steady[v][name] for v in variants], 12, ".2f"))


if __name__ == "__main__":
    main()

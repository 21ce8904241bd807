"""How fast does a werk worker drain a queue of no-op jobs, and what do metrics and tracing cost?

For each executor, the queue is prefilled with N no-op jobs (nothing is pushed while timing),
a worker with concurrency C drains it, and the rate is compared with two single-connection
baselines: a bare ``fetch`` + ``ack`` loop (werk.Client), and the same loop sending each ACK
in the same write as the next FETCH. Each worker runs in a process of its own, started for
the run; the figures are taken in its steady state, after the first 20% of the jobs, while
every child is up: the rate, and the CPU per job of the worker process plus its live
children (the per-job overhead) and of the server.

``--observe`` runs each executor with no middleware (``none``, always run: the reference),
with ``werk.metrics.PrometheusMiddleware`` (``metrics``), ``werk.tracing.TracingMiddleware``
(``tracing``) or both (``both``). Tracing runs once per ``--tracing`` variant:

``noop``       the API alone (no SDK configured): what an app pays that never set up tracing
``unsampled``  the SDK, sampling nothing (spans are created, none recorded)
``sampled``    the SDK, 1% of the traces recorded, exported to nowhere by a batch processor
``all``        the SDK, every span recorded and exported to nowhere

``--baseline SRC`` runs every measurement a second time with the werk of another source
tree (e.g. ``git worktree add ../main main`` then ``--baseline ../main/src``), the server
staying the same, and prints both side by side. ``--rounds R`` repeats everything R times,
interleaved (each round runs every variant once, in alternating order), and reports the
medians: on a busy machine a single wall-clock run can be off by 10% or more.

The server is ``--url`` or ``FAKTORY_URL`` when set (e.g. a real Faktory; it is FLUSHed
before each run), else ``werk server`` started in a separate process (memory storage) so
that it gets a core of its own. The server's CPU per job is read from /proc: for a server
not started here, only with ``--server-pid PID`` (its live children count too: a real
Faktory runs its Redis as one).

``--external LABEL=COMMAND`` (repeatable) runs a worker that is not werk's (built
elsewhere) as one more row of each round, against the same server: the queue is prefilled
with N no-op jobs (jobtype ``noop``, no args) exactly as for werk's workers, then COMMAND
runs through the shell with FAKTORY_URL, BENCH_ROW=worker, BENCH_JOBS (N), BENCH_QUEUE
(``bench``) and BENCH_CONCURRENCY (C) in its environment, drains the queue and prints one
JSON line ``{"jobs_per_s": float, "cpu_us_per_job": float}`` (its own rate and CPU per
job, the window its own). Last, werk's executors (no middleware) over it.

``--pin`` keeps the server started here on the first CPU and this script and every worker
(the process executor's children too) on the second. The worker's CPU is then the limit, so
jobs/s follows the worker's cost per job, and the figures leave out what an unpinned thread
pool loses to its threads' GIL hand-offs between cores (on 2 cores, no-op jobs, more than
half of its CPU): the way to see what a middleware adds.

Usage::

    python benchmarks/worker.py                  # N=20000, C=20, every executor
    python benchmarks/worker.py -n 5000 -c 50 --executor thread asyncio
    python benchmarks/worker.py --executor asyncio --handler async   # an async def no-op
    python benchmarks/worker.py --executor thread --observe metrics tracing both \\
        --tracing noop sampled all --rounds 5 --baseline ../main/src
    python benchmarks/worker.py --pin --observe metrics both --rounds 3
    python benchmarks/worker.py --url tcp://127.0.0.1:7519 --server-pid PID \\
        --external go='./bench-worker' --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if "--child" not in sys.argv:  # a measured worker imports the werk its PYTHONPATH names
    sys.path.insert(0, str(ROOT / "src"))

import _callgrind  # noqa: E402
import _external  # noqa: E402
from _observe import TRACINGS, modes, observe_mode, observers  # noqa: E402
from _server import Server, process_cpu  # noqa: E402
from _worker_report import LOOP, median, report, report_instructions, versus_external  # noqa: E402

import werk  # noqa: E402
from werk._protocol import command_lines as commands  # noqa: E402
from werk._protocol.replies import fetched_payload  # noqa: E402

QUEUE = "bench"
PIPELINED = "ACK+FETCH one write, 1 conn"
Run = Callable[[], tuple[float, float]]  # a loop_row's loop: (jobs/s, its CPU us per job)

app = werk.App()


@app.job
def noop() -> None:
    """The job being measured: nothing at all."""


async_app = werk.App()


@async_app.job(jobtype="noop")
async def noop_async() -> None:
    """The same job as a coroutine (``--handler async``), for the asyncio executor to await
    on its loop (a sync handler there takes a trip to a thread and back)."""


# -- the measured worker (a process of its own) -------------------------------------------


class FirstJob(werk.Middleware):
    """Records when the first job started (excludes worker start-up from the timing)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def before_process(self, ctx: werk.JobContext) -> None:
        if self.first is None:
            self.first = time.perf_counter()


def run_child(spec: dict[str, Any]) -> dict[str, float]:
    """Drain the queue with one worker; what it took, as :func:`measure` reports it."""
    n, server_pid = spec["n"], spec["server_pid"]
    marker = FirstJob()
    chosen = async_app if spec.get("handler") == "async" else app
    for middleware in [marker, *observers(app, spec["observe"])]:
        chosen.add_middleware(middleware)
    worker = werk.Worker(
        chosen, spec["url"], concurrency=spec["c"], queues=[QUEUE], executor=spec["executor"]
    )
    worker.start()
    warm = n // 5
    poll = spec.get("poll", 0.002)
    while worker.processed + worker.failed < warm:
        time.sleep(poll)
    done0, t0, cpu0 = worker.processed + worker.failed, time.perf_counter(), process_cpu("self")
    srv0 = process_cpu(server_pid) if server_pid else float("nan")
    while worker.processed + worker.failed < n:
        time.sleep(poll)
    end = time.perf_counter()
    cpu = process_cpu("self") - cpu0
    srv = (process_cpu(server_pid) - srv0) if server_pid else float("nan")
    worker.stop(30)
    assert worker.failed == 0, f"{worker.failed} jobs failed"
    assert marker.first is not None
    steady = n - done0
    return {
        "rate": n / (end - marker.first),
        "steady_rate": steady / (end - t0),
        "steady_us": cpu / steady * 1e6,
        "steady_srv_us": srv / steady * 1e6,
    }


# -- the runs ----------------------------------------------------------------------------


def prefill(url: str, n: int) -> None:
    with werk.Client(url) as client:
        client.flush()
        for start in range(0, n, 1000):
            batch = [{"jobtype": "noop", "args": [], "queue": QUEUE}] * min(1000, n - start)
            errors = client.push_bulk([dict(b) for b in batch])
            assert not errors, errors


def _drained(url: str) -> None:
    with werk.Client(url) as client:
        info = client.info()["faktory"]
    left = info["queues"].get(QUEUE, 0) + info["sets"]["working"]
    assert left == 0, f"{left} jobs not acknowledged"


def loop_row(url: str, n: int, server_pid: int | None, fn: Run) -> dict[str, float]:
    """A loop on a queue of ``n`` jobs: ``fn`` runs it and returns its rate and its CPU
    per job; the server's CPU per job is read around it."""
    prefill(url, n)
    srv0 = process_cpu(server_pid) if server_pid else float("nan")
    rate, us = fn()
    _drained(url)
    srv = (process_cpu(server_pid) - srv0) if server_pid else float("nan")
    return {"rate": rate, "steady_rate": rate, "steady_us": us, "steady_srv_us": srv / n * 1e6}


def in_here(loop: Callable[[str, int], float], url: str, n: int) -> Run:
    """A single-connection loop in this process, as :func:`loop_row` runs it."""

    def run() -> tuple[float, float]:
        t = os.times()
        own0 = t.user + t.system
        seconds = loop(url, n)
        t = os.times()
        return n / seconds, (t.user + t.system - own0) / n * 1e6

    return run


def external(command: str, url: str, n: int, c: int) -> Run:
    """An ``--external`` worker, as :func:`loop_row` runs it."""

    def run() -> tuple[float, float]:
        got = _external.run(command, url, "worker", n, QUEUE, concurrency=c)
        return got["jobs_per_s"], got["cpu_us_per_job"]

    return run


def bare_loop(url: str, n: int) -> float:
    """fetch + ack on one connection, one command at a time."""
    with werk.Client(url) as client:
        start = time.perf_counter()
        for _ in range(n):
            job = client.fetch(QUEUE)
            assert job is not None
            client.ack(job.jid)
        return time.perf_counter() - start


def pipelined_loop(url: str, n: int) -> float:
    """The same loop, each ACK sent in one write with the next FETCH (execute_many)."""
    with werk.Client(url) as client:
        fetch = commands.fetch([QUEUE])
        start = time.perf_counter()
        job = fetched_payload(client.execute(fetch, blocking=True))
        for _ in range(n - 1):
            assert job is not None
            ack, reply = client.execute_many([commands.ack(job["jid"]), fetch], blocking=True)
            assert ack == "OK"
            job = fetched_payload(reply)
        assert job is not None
        assert client.execute(commands.ack(job["jid"])) == "OK"
        return time.perf_counter() - start


def worker_row(
    spec: dict[str, Any], source: str | None, callgrind: bool = False
) -> dict[str, float]:
    """Run :func:`run_child` in a new interpreter importing werk from ``source`` (a src/
    directory; None: this tree); under callgrind, the row has its ``instructions``."""
    prefill(spec["url"], spec["n"])
    env = {**os.environ, "PYTHONPATH": source or str(ROOT / "src")}
    argv = [sys.executable, __file__, "--child", json.dumps(spec)]
    if callgrind:
        count, stdout = _callgrind.run(argv, env)
    else:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(f"worker run {spec} failed:\n{out.stderr}")
        stdout = out.stdout
    _drained(spec["url"])
    row: dict[str, float] = json.loads(stdout.strip().splitlines()[-1])
    if callgrind:
        row["instructions"] = float(count)
    return row


def instructions_per_job(spec: dict[str, Any], source: str | None) -> dict[str, float]:
    """Instructions per job of a worker process: runs of N and 2N jobs under callgrind, the
    difference over N (start-up and shutdown cancel out). Instruction counts do not depend
    on the machine's load, unlike wall-clock and CPU time."""
    # Poll slowly: the main thread's waiting must not add instructions as time goes by.
    spec = {**spec, "poll": 0.2}

    def count(n: int) -> int:
        return int(worker_row({**spec, "n": n}, source, callgrind=True)["instructions"])

    return {"instructions": _callgrind.per_job(count, spec["n"])}


def _pin(server: Server | None) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs two CPUs")
    if server is not None:
        os.sched_setaffinity(server.pid, {cpus[0]})
    os.sched_setaffinity(0, {cpus[1]})  # inherited by every worker and its children


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(run_child(json.loads(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=int, default=20000, help="jobs per run")
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument(
        "--executor",
        nargs="+",
        default=["thread", "asyncio", "process"],
        choices=["thread", "asyncio", "process"],
    )
    parser.add_argument(
        "--observe",
        nargs="*",
        default=[],
        type=observe_mode,
        help="also run each executor with the metrics and/or tracing middleware: none,"
        " metrics, tracing, both (once per --tracing variant), or tracing:VARIANT,"
        " both:VARIANT",
    )
    parser.add_argument(
        "--tracing",
        nargs="+",
        default=["sampled"],
        choices=TRACINGS,
        help="the tracer providers of the tracing runs (default: sampled, 1%%)",
    )
    parser.add_argument(
        "--handler",
        default="sync",
        choices=["sync", "async"],
        help="the no-op job as a sync function (default) or a coroutine",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians)")
    parser.add_argument("--baseline", help="src/ of another werk tree, measured side by side")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per job under valgrind's callgrind instead (use a small -n)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server on the first CPU, the workers on the second (see above)",
    )
    parser.add_argument("--url", help="the server to use (default: FAKTORY_URL, else werk's)")
    parser.add_argument(
        "--server-pid", type=int, metavar="PID", help="--url's server process, for its CPU"
    )
    _external.add_option(parser, "one more row")
    args = parser.parse_args()
    url = args.url or os.environ.get("FAKTORY_URL")
    server: Server | None = None
    if not url:
        server = Server("memory", str(ROOT / "src"))
        url = server.url
    if args.pin:
        _pin(server)
    pid = server.pid if server else args.server_pid
    n, c = args.jobs, args.concurrency
    sources: dict[str, str | None] = {"now": None}
    if args.baseline:
        sources["before"] = os.path.abspath(args.baseline)
    mode_list = modes(args.observe, args.tracing)
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    loops: dict[str, list[dict[str, float]]] = {LOOP: [], PIPELINED: []}

    def spec(executor: str, mode: str) -> dict[str, Any]:
        return {"url": url, "n": n, "c": c, "executor": executor, "observe": mode,
                "handler": args.handler, "server_pid": pid}  # fmt: skip

    try:
        if args.instructions:
            counts = {}
            for ex in args.executor:
                for mode in mode_list:
                    for name, source in sources.items():
                        found = instructions_per_job(spec(ex, mode), source)
                        counts[(ex, mode, name)] = found["instructions"]
                        print(f"{ex} {mode} {name}: {found}", file=sys.stderr, flush=True)
            report_instructions(counts, args.executor, mode_list, list(sources), n)
            return 0
        for r in range(args.rounds):
            loops[LOOP].append(loop_row(url, n, pid, in_here(bare_loop, url, n)))
            loops[PIPELINED].append(loop_row(url, n, pid, in_here(pipelined_loop, url, n)))
            for label, command in args.external:
                row = loop_row(url, n, pid, external(command, url, n, c))
                loops.setdefault(label, []).append(row)
            order = list(sources.items())
            for ex in args.executor:
                for mode in mode_list:
                    # Alternate which tree goes first: a machine warming up or cooling
                    # down must not favour one.
                    order.reverse()
                    for name, source in order:
                        row = worker_row(spec(ex, mode), source)
                        results.setdefault((ex, mode, name), []).append(row)
                        print(
                            f"round {r + 1}/{args.rounds} {ex} {mode} {name}:"
                            f" {row['steady_rate']:.0f} jobs/s, {row['steady_us']:.0f}us CPU",
                            file=sys.stderr,
                        )
    finally:
        if server is not None:
            server.close()
    where = "werk server (separate process)" if server else url
    header = (
        f"\n{n} no-op jobs, c={c}, server: {where}, python {sys.version.split()[0]},"
        f" {args.rounds} round(s), {args.handler} handler"
    )
    if args.pin:
        header += "; pinned: server and workers on a core each"
    if args.baseline:
        header += f"; before = {args.baseline}"
    report(results, loops, args.executor, mode_list, list(sources), header)
    if pid is None:
        print("(server CPU: not read from an outside server without --server-pid)")
    for label, _ in args.external:
        versus_external(results, median(loops[label]), label, args.executor, list(sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())

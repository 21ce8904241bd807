"""How fast does a werk worker drain a queue of no-op jobs?

For each executor, the queue is prefilled with N no-op jobs (nothing is pushed while timing),
a worker with concurrency C drains it, and the rate is compared with two single-connection
baselines: a bare ``fetch`` + ``ack`` loop (werk.Client), and the same loop sending each ACK
in the same write as the next FETCH. CPU time per job of the server and of the worker
process shows where the time goes.

The worker's "all" CPU column covers the whole run, start-up and shutdown included (for the
process executor that is mostly starting the child interpreters). The "steady" columns are
measured only after the first 20% of the jobs, while every child is up: the rate, and the
CPU per job of the worker process plus its live children - the per-job overhead.

The server is ``FAKTORY_URL`` when set (e.g. a real Faktory), else ``werk server`` started
in a separate process (memory storage) so that it gets a core of its own.

Usage::

    python benchmarks/worker.py                  # N=20000, C=20, every executor
    python benchmarks/worker.py -n 5000 -c 50 --executor thread asyncio
    python benchmarks/worker.py --observe metrics tracing both --executor thread

``--observe`` adds, after each executor's row, the same run with
``werk.metrics.PrometheusMiddleware`` (``metrics``), ``werk.tracing.TracingMiddleware``
(``tracing``: an SDK tracer provider whose batch processor exports to nowhere, so every
span is recorded), both, or both with 1% of the traces sampled (``sampled``), and prints
what they cost.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import werk  # noqa: E402
from werk._protocol import command_lines as commands  # noqa: E402
from werk._protocol.replies import fetched_payload  # noqa: E402

QUEUE = "bench"

app = werk.App()


@app.job
def noop() -> None:
    """The job being measured: nothing at all."""


class FirstJob(werk.Middleware):
    """Records when the first job started (excludes worker start-up from the timing)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def before_process(self, ctx: werk.JobContext) -> None:
        if self.first is None:
            self.first = time.perf_counter()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_of(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc), 0.0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _children(exclude: int | None) -> list[int]:
    """Pids of this process's live children (Linux /proc), [] elsewhere."""
    pids: list[int] = []
    for task in Path("/proc/self/task").glob("*/children"):
        try:
            pids.extend(int(p) for p in task.read_text().split())
        except OSError:
            continue
    return [pid for pid in pids if pid != exclude]


def _tree_cpu(server_pid: int | None) -> float:
    """CPU seconds of this process (all threads) plus its live children (but the server)."""
    t = os.times()
    return t.user + t.system + sum(_cpu_of(pid) for pid in _children(server_pid))


class Steady:
    """Wall and CPU time (this process + live children) from a warm-up point to the end."""

    def __init__(self) -> None:
        self.jobs = 0
        self.seconds = float("nan")
        self.cpu = float("nan")
        self.server_cpu = float("nan")


def prefill(url: str, n: int) -> None:
    with werk.Client(url) as client:
        client.flush()
        for start in range(0, n, 1000):
            batch = [{"jobtype": "noop", "args": [], "queue": QUEUE}] * min(1000, n - start)
            errors = client.push_bulk([dict(b) for b in batch])
            assert not errors, errors


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


def observers(which: str) -> list[werk.Middleware]:
    """The metrics and/or tracing middleware, recording into a registry and spans of their own."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from prometheus_client import CollectorRegistry

    from werk.metrics import PrometheusMiddleware
    from werk.tracing import TracingMiddleware

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    out: list[werk.Middleware] = []
    if which in ("metrics", "both", "sampled"):
        out.append(PrometheusMiddleware(app, registry=CollectorRegistry()))
    if which in ("tracing", "both", "sampled"):
        sampler = ParentBased(TraceIdRatioBased(0.01 if which == "sampled" else 1.0))
        provider = TracerProvider(sampler=sampler)
        provider.add_span_processor(BatchSpanProcessor(Nowhere()))
        out.append(TracingMiddleware(provider))
    return out


def run_worker(
    url: str,
    n: int,
    concurrency: int,
    executor: str,
    steady: Steady,
    server_pid: int | None,
    extra: list[werk.Middleware] | None = None,
) -> float:
    marker = FirstJob()
    bench_app = app
    bench_app.hooks.middleware.clear()
    bench_app.add_middleware(marker)
    for middleware in extra or ():
        bench_app.add_middleware(middleware)
    worker = werk.Worker(
        bench_app,
        url,
        concurrency=concurrency,
        queues=[QUEUE],
        executor=executor,  # type: ignore[arg-type]
    )
    worker.start()
    warm = n // 5
    while worker.processed + worker.failed < warm:
        time.sleep(0.002)
    done0, t0, cpu0 = worker.processed + worker.failed, time.perf_counter(), _tree_cpu(server_pid)
    srv0 = _cpu_of(server_pid) if server_pid else float("nan")
    while worker.processed + worker.failed < n:
        time.sleep(0.002)
    end = time.perf_counter()
    steady.cpu = _tree_cpu(server_pid) - cpu0
    steady.server_cpu = (_cpu_of(server_pid) - srv0) if server_pid else float("nan")
    steady.seconds = end - t0
    steady.jobs = n - done0
    worker.stop(30)
    assert worker.failed == 0, f"{worker.failed} jobs failed"
    assert marker.first is not None
    return end - marker.first


def measure(
    label: str,
    url: str,
    n: int,
    server_pid: int | None,
    fn: Callable[[], float],
    steady: Steady | None = None,
) -> dict[str, Any]:
    prefill(url, n)
    server_cpu = _cpu_of(server_pid) if server_pid else 0.0
    own_cpu = _self_cpu()
    seconds = fn()
    server_cpu = (_cpu_of(server_pid) - server_cpu) if server_pid else float("nan")
    own_cpu = _self_cpu() - own_cpu
    with werk.Client(url) as client:
        info = client.info()["faktory"]
    left = info["queues"].get(QUEUE, 0) + info["sets"]["working"]
    assert left == 0, f"{label}: {left} jobs not acknowledged"
    row = {
        "label": label,
        "seconds": seconds,
        "rate": n / seconds,
        "server_us": server_cpu / n * 1e6,
        "worker_us": own_cpu / n * 1e6,
        # A single-connection loop has no start-up worth the name: steady = whole run.
        "steady_rate": n / seconds,
        "steady_us": own_cpu / n * 1e6,
        "steady_srv_us": server_cpu / n * 1e6,
    }
    if steady is not None and steady.jobs:
        row["steady_rate"] = steady.jobs / steady.seconds
        row["steady_us"] = steady.cpu / steady.jobs * 1e6
        row["steady_srv_us"] = steady.server_cpu / steady.jobs * 1e6
    return row


def main() -> int:
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
        choices=["metrics", "tracing", "both", "sampled"],
        help="also run each executor with the metrics and/or tracing middleware",
    )
    args = parser.parse_args()
    url = os.environ.get("FAKTORY_URL")
    server: subprocess.Popen[bytes] | None = None
    if not url:
        port = _free_port()
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "werk", "server", "--storage", "memory"),
                *("--bind", f"127.0.0.1:{port}", "--log-level", "WARNING"),
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        url = f"tcp://127.0.0.1:{port}"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
    pid = server.pid if server else None
    n, c = args.jobs, args.concurrency
    rows = []
    try:
        rows.append(measure("fetch+ack loop, 1 conn", url, n, pid, lambda: bare_loop(url, n)))
        rows.append(
            measure("ACK+FETCH one write, 1 conn", url, n, pid, lambda: pipelined_loop(url, n))
        )
        for ex in args.executor:
            steady = Steady()
            rows.append(
                measure(
                    f"werk worker {ex}, c={c}",
                    url,
                    n,
                    pid,
                    lambda ex=ex, st=steady: run_worker(url, n, c, ex, st, pid),  # type: ignore[misc]
                    steady,
                )
            )
            plain = rows[-1]
            for which in args.observe:
                steady = Steady()
                observed = measure(
                    f"  {ex} +{which}",
                    url,
                    n,
                    pid,
                    lambda ex=ex, st=steady, w=which: run_worker(  # type: ignore[misc]
                        url, n, c, ex, st, pid, observers(w)
                    ),
                    steady,
                )
                observed["cost"] = 1 - observed["steady_rate"] / plain["steady_rate"]
                observed["cpu_cost"] = observed["steady_us"] - plain["steady_us"]
                rows.append(observed)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    base = rows[0]["rate"]
    where = "werk server (separate process)" if server else url
    print(f"\n{n} no-op jobs, server: {where}, python {sys.version.split()[0]}")
    print(f"{'':30} {'':-^44} {'':-^35}")
    print(f"{'':30} {'whole run':^44} {'steady state (after 20%)':^35}")
    print(
        f"{'':30} {'seconds':>8} {'jobs/s':>8} {'vs loop':>8} {'srv CPU':>9} {'wkr CPU':>9}"
        f" {'jobs/s':>8} {'vs loop':>8} {'srv CPU':>9} {'wkr CPU':>9}"
    )
    for r in rows:
        print(
            f"{r['label']:30} {r['seconds']:8.2f} {r['rate']:8.0f} {r['rate'] / base:7.2f}x"
            f" {r['server_us']:7.0f}us {r['worker_us']:7.0f}us"
            f" {r['steady_rate']:8.0f} {r['steady_rate'] / rows[0]['steady_rate']:7.2f}x"
            f" {r['steady_srv_us']:7.0f}us {r['steady_us']:7.0f}us"
        )
    for r in rows:
        if "cost" in r:
            print(
                f"{r['label'].strip()}: steady throughput {-r['cost']:+.1%}, worker CPU"
                f" {r['cpu_cost']:+.0f}us per job"
            )
    print(
        "(CPU = CPU time per job of the server process and of the benchmark/worker process;"
        "\n whole run: incl. worker start-up/shutdown and reaped children (the process"
        " executor's\n child interpreters); steady: worker process + live children, per-job only)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

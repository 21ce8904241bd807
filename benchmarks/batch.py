"""What batch bookkeeping costs the server per job: 100,000 no-op jobs in a batch vs the
same jobs without one.

Three kinds of jobs, each run the same way:

* ``plain``: no ``custom`` (what every job cost before batches existed);
* ``custom``: a ``custom`` object but no batch (the extension hooks run, nothing counts);
* ``batch``: ``custom.bid`` of a committed batch with a complete and a success callback.

Two measurements, each printed as a table with the ratios to ``plain`` and to ``custom``
side by side:

1. **in-process**: the dispatcher alone (memory storage, no sockets, the standard
   extensions), microseconds per job for PUSHB (x1000) and for FETCH + ACK; the best of
   ``--rounds`` runs in fresh child processes, the kinds taking turns.
2. **end to end**: ``werk server`` (SQLite storage, a process of its own) and
   ``werk worker`` (a process of its own) draining the jobs; the server's CPU
   microseconds per job (from /proc, Linux) while pushing and while the worker works, and
   the wall-clock rate. CPU per job hardly moves when other processes load the machine;
   the rate does.

Reference (2 shared cores, Python 3.11, 100,000 jobs, best of 2 end-to-end runs): server
CPU per job, push + work, plain 124.5 us, custom 138.1 us, batch 143.2 us: the batch
bookkeeping adds 4% to the same jobs without a batch (1.037 x custom); a member's
``custom`` object itself (which the wire format requires) accounts for the rest of the
15% over jobs without any ``custom``. Ratios move by several percent between runs on a
busy machine.

Usage::

    python benchmarks/batch.py               # 100,000 jobs
    python benchmarks/batch.py -n 20000      # quicker
    python benchmarks/batch.py --skip-e2e    # the in-process table only
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _inproc import Dispatcher, best_of
from _raw import Raw
from _server import Server

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("plain", "custom", "batch")
QUEUE = "bench"
CALLBACKS = {
    "complete": {"jobtype": "noop", "args": [], "queue": QUEUE},
    "success": {"jobtype": "noop", "args": [], "queue": QUEUE},
}


def jobs(kind: str, n: int, bid: str = "") -> list[dict[str, Any]]:
    base: list[dict[str, Any]] = [
        {"jid": f"{kind}-{i:012d}", "jobtype": "noop", "args": [], "queue": QUEUE} for i in range(n)
    ]
    if kind == "custom":
        for i, job in enumerate(base):
            job["custom"] = {"trace": f"t-{i}"}
    elif kind == "batch":
        for job in base:
            job["custom"] = {"bid": bid}
    return base


def pushb_lines(kind: str, n: int, bid: str) -> list[bytes]:
    all_jobs = jobs(kind, n, bid)
    return [
        b"PUSHB " + json.dumps(all_jobs[i : i + 1000], separators=(",", ":")).encode()
        for i in range(0, n, 1000)
    ]


# -- 1. in-process ---------------------------------------------------------------------


def in_process_child(kind: str, n: int) -> None:
    """Time the dispatcher alone for one kind; print ``{"push": us, "work": us}``."""
    import gc

    sys.path.insert(0, str(ROOT / "src"))
    from werk.server._config import ServerConfig
    from werk.server._features import standard_extensions

    d = Dispatcher(extensions=standard_extensions(ServerConfig()))
    d.warm_up()
    bid = ""
    if kind == "batch":
        reply = d.dispatch(d.state, b"BATCH NEW " + json.dumps(CALLBACKS).encode())
        assert isinstance(reply, bytes)
        bid = reply.split(b"\r\n")[1].decode()
    lines = pushb_lines(kind, n, bid)
    gc.collect()
    gc.disable()
    took, reply = d.pushes(lines, clock=time.process_time)
    assert reply == b"$2\r\n{}\r\n", reply
    push = took / n * 1e6
    if bid:
        assert d.dispatch(d.state, b"BATCH COMMIT " + bid.encode()) == b"+OK\r\n"
    work = d.fetch_acks(QUEUE.encode(), n, clock=time.process_time) / n * 1e6
    if bid:  # the bookkeeping did its job: complete fired, every member counted
        status = d.dispatch(d.state, b"BATCH STATUS " + bid.encode())
        assert isinstance(status, bytes)
        body = json.loads(status.split(b"\r\n")[1])
        assert (body["pending"], body["complete_st"]) == (0, "1"), body
    print(json.dumps({"push": push, "work": work}))


def in_process(n: int, rounds: int) -> dict[str, dict[str, float]]:
    argv = [sys.executable, __file__, "--in-process-child"]
    return best_of(rounds, {kind: ([*argv, kind, str(n)], None) for kind in KINDS})


# -- 2. end to end ---------------------------------------------------------------------


WORKER = [sys.executable, "-m", "werk", "worker", "batch_noop_jobs", "-q", QUEUE]
WORKER += ["--log-level", "WARNING"]


def end_to_end(kind: str, n: int, concurrency: int, workdir: Path) -> dict[str, float]:
    server = Server("sqlite", str(ROOT / "src"))
    worker: subprocess.Popen[bytes] | None = None
    try:
        c = Raw(server.address)
        bid = ""
        if kind == "batch":
            bid = c.call(b"BATCH NEW " + json.dumps(CALLBACKS).encode() + b"\r\n").decode()
        lines = pushb_lines(kind, n, bid)
        cpu0 = server.cpu() or 0.0
        start = time.perf_counter()
        for line in lines:
            assert c.call(line + b"\r\n") == b"{}"
        push_wall = time.perf_counter() - start
        if bid:
            assert c.call(b"BATCH COMMIT " + bid.encode() + b"\r\n") == b"+OK"
        time.sleep(0.2)  # the last commits
        cpu1 = server.cpu() or 0.0
        expected = n + (2 if bid else 0)  # the callbacks are no-op jobs of the same queue
        env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(ROOT / "src"), str(workdir))))
        env.pop("FAKTORY_PASSWORD", None)
        worker = subprocess.Popen(
            [*WORKER, "-c", str(concurrency), "--url", server.url],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        start = time.perf_counter()
        while True:
            time.sleep(0.25)
            info = json.loads(c.call(b"INFO\r\n"))["faktory"]
            if info["total_processed"] >= expected:
                break
        work_wall = time.perf_counter() - start
        cpu2 = server.cpu() or 0.0
        if bid:
            status = json.loads(c.call(b"BATCH STATUS " + bid.encode() + b"\r\n"))
            assert (status["pending"], status["complete_st"]) == (0, "2"), status
            assert status["success_st"] in ("1", "2"), status
        return {
            "push_us": (cpu1 - cpu0) / n * 1e6,
            "work_us": (cpu2 - cpu1) / n * 1e6,
            "push_rate": n / push_wall,
            "work_rate": n / work_wall,
        }
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        server.close()


# -- report ----------------------------------------------------------------------------


def table(title: str, rows: dict[str, dict[str, float]], columns: list[tuple[str, str]]) -> None:
    """One row per kind; each column with its ratio to ``plain`` and to ``custom`` (the
    same jobs with a ``custom`` object but no batch: what the bookkeeping itself adds)."""
    print(f"\n{title}")
    header = f"{'kind':<8}" + "".join(
        f"{label:>18}{'x plain':>9}{'x custom':>9}" for _, label in columns
    )
    print(header)
    print("-" * len(header))
    for kind, values in rows.items():
        cells = ""
        for key, _ in columns:
            vs_plain = values[key] / rows["plain"][key]
            vs_custom = values[key] / rows["custom"][key]
            cells += f"{values[key]:>18.1f}{vs_plain:>9.3f}{vs_custom:>9.3f}"
        print(f"{kind:<8}{cells}")


def main() -> None:
    if sys.argv[1:2] == ["--in-process-child"]:
        in_process_child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="jobs per kind (default 100000)")
    parser.add_argument("--rounds", type=int, default=3, help="in-process runs per kind")
    parser.add_argument("--e2e-rounds", type=int, default=2, help="end-to-end runs per kind")
    parser.add_argument("-c", "--concurrency", type=int, default=20, help="worker slots")
    parser.add_argument("--skip-e2e", action="store_true", help="the in-process table only")
    opts = parser.parse_args()
    n = opts.n
    print(f"{n:,} no-op jobs per kind; python {sys.version.split()[0]}")
    best = in_process(n, opts.rounds)
    table(
        f"in-process dispatcher, memory storage (us per job, best of {opts.rounds})",
        best,
        [("push", "PUSHB us/job"), ("work", "FETCH+ACK us/job")],
    )
    if opts.skip_e2e:
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "batch_noop_jobs.py").write_text(
            textwrap.dedent(
                """\
                import werk

                app = werk.App()


                @app.job
                def noop() -> None:
                    pass
                """
            )
        )
        # The kinds take turns, each keeping its lowest CPU per job (and best rates): what
        # other processes add to a run only ever raises it.
        e2e: dict[str, dict[str, float]] = {}
        for _ in range(opts.e2e_rounds):
            for kind in KINDS:
                run = end_to_end(kind, n, opts.concurrency, workdir)
                best = e2e.setdefault(kind, run)
                for key, value in run.items():
                    keep = max if key.endswith("rate") else min
                    best[key] = keep(best[key], value)
        for values in e2e.values():
            values["total_us"] = values["push_us"] + values["work_us"]
    table(
        "end to end: werk server (SQLite) + werk worker "
        f"(-c {opts.concurrency}); server CPU us per job, best of {opts.e2e_rounds}",
        e2e,
        [("push_us", "push CPU us/job"), ("work_us", "work CPU us/job"), ("total_us", "total")],
    )
    table(
        "end to end: wall-clock rates (jobs/s; noisy on a shared machine)",
        e2e,
        [("push_rate", "push jobs/s"), ("work_rate", "work jobs/s")],
    )


if __name__ == "__main__":
    main()

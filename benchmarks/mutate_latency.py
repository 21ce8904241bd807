"""Another client's PUSH latency while MUTATE sweeps a set of a million jobs, versus idle.

The server runs as a child process (``python -m werk server``, uvloop when installed),
memory and SQLite storage. The scheduled set is filled with 1,000,000 jobs by PUSHB, half
of type ``Even``; then one connection sends ``MUTATE kill`` with the filter
``{"regexp":"*\\"jobtype\\":\\"Even\\"*"}`` (a sweep over every entry that moves half of
them to the dead set) while another connection pushes one job at a time and times each
reply. The same pusher on the idle server is the reference.

Usage::

    python benchmarks/mutate_latency.py                    # 1,000,000 entries
    python benchmarks/mutate_latency.py --entries 100000   # smaller
    python benchmarks/mutate_latency.py --baseline ../old/src   # before/after, side by side

``--baseline`` runs the same measurement against a server from another source tree (e.g.
``git archive`` of an older commit), one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

from _raw import Raw
from _server import Server

FUTURE = "2099-01-01T00:00:00Z"
PATTERN = '*"jobtype":"Even"*'


def fill(port: int, entries: int, batch: int = 1000) -> float:
    """Schedule ``entries`` jobs far in the future; the seconds it took."""
    c = Raw(port)
    start = time.perf_counter()
    for first in range(0, entries, batch):
        jobs = [
            {
                "jid": f"jid-{i:010d}",
                "jobtype": "Even" if i % 2 == 0 else "Odd",
                "args": [i, "some payload to match against"],
                "at": FUTURE,
            }
            for i in range(first, min(first + batch, entries))
        ]
        c.sock.sendall(b"PUSHB " + json.dumps(jobs, separators=(",", ":")).encode() + b"\r\n")
        assert c.reply() == b"{}"
    c.sock.close()
    return time.perf_counter() - start


class Pusher(threading.Thread):
    """Pushes one job at a time on its own connection, timing each reply."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.conn = Raw(port)
        self.samples: list[tuple[float, float]] = []  # (sent at, seconds)
        self.stop = threading.Event()

    def run(self) -> None:
        c, i = self.conn, 0
        while not self.stop.is_set():
            line = b'PUSH {"jid":"jid-ping-%010d","jobtype":"Ping","args":[]}\r\n' % i
            sent = time.perf_counter()
            c.sock.sendall(line)
            assert c.line() == b"+OK"
            self.samples.append((sent, time.perf_counter() - sent))
            i += 1


def idle(port: int, seconds: float = 2.0) -> list[float]:
    pusher = Pusher(port)
    pusher.start()
    time.sleep(seconds)
    pusher.stop.set()
    pusher.join()
    return [s for _, s in pusher.samples]


def during_mutate(port: int) -> tuple[list[float], float, dict[str, int]]:
    """PUSH latencies of pushes in flight while the MUTATE ran, its duration, the sets after."""
    pusher = Pusher(port)
    pusher.start()
    while len(pusher.samples) < 100:
        time.sleep(0.01)
    mutator = Raw(port)
    op = {"cmd": "kill", "target": "scheduled", "filter": {"regexp": PATTERN}}
    started = time.perf_counter()
    mutator.sock.sendall(b"MUTATE " + json.dumps(op, separators=(",", ":")).encode() + b"\r\n")
    assert mutator.line() == b"+OK"
    ended = time.perf_counter()
    pusher.stop.set()
    pusher.join()
    mutator.sock.sendall(b"INFO\r\n")
    sets = json.loads(mutator.reply())["faktory"]["sets"]
    # Every push that was waiting for its reply at some moment of the sweep.
    during = [s for sent, s in pusher.samples if sent < ended and sent + s > started]
    return during, ended - started, sets


def summary(samples: list[float]) -> tuple[float, float, float]:
    """Median, p99 and max in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e3, p99 * 1e3, ordered[-1] * 1e3


def run(storage: str, entries: int, pythonpath: str | None) -> dict[str, object]:
    server = Server(storage, pythonpath)
    try:
        filled = fill(server.port, entries)
        quiet = idle(server.port)
        busy, took, sets = during_mutate(server.port)
    finally:
        server.close()
    assert sets["scheduled"] == entries // 2 and sets["dead"] == (entries + 1) // 2, sets
    return {"fill": filled, "idle": quiet, "busy": busy, "mutate": took}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--storage", choices=("memory", "sqlite", "both"), default="both")
    parser.add_argument(
        "--baseline", default=None, help="source tree (src/) of the version to compare with"
    )
    opts = parser.parse_args()
    sources: dict[str, str | None] = {"now": None}
    if opts.baseline:
        sources = {"before": os.path.abspath(opts.baseline), "now": None}
    storages = ("memory", "sqlite") if opts.storage == "both" else (opts.storage,)
    rows = []
    for storage in storages:
        for variant, src in sources.items():
            result = run(storage, opts.entries, src)
            rows.append((storage, variant, result))
            print(f"  {storage} {variant}: filled in {result['fill']:.1f} s", flush=True)
    print(f"\nPUSH latency (ms) while MUTATE kill sweeps {opts.entries:,} scheduled jobs")
    head = f"{'':16} {'idle: median':>13} {'p99':>7} {'max':>7}"
    head += f" {'MUTATE: median':>15} {'p99':>7} {'max':>8} {'p99 x':>7} {'pushes':>7}"
    print(head + f" {'MUTATE s':>9}")
    for storage, variant, r in rows:
        q = summary(r["idle"])  # type: ignore[arg-type]
        b = summary(r["busy"])  # type: ignore[arg-type]
        line = f"{storage + ' ' + variant:16} {q[0]:>13.2f} {q[1]:>7.2f} {q[2]:>7.2f}"
        line += f" {b[0]:>15.2f} {b[1]:>7.2f} {b[2]:>8.2f} {b[1] / q[1]:>7.1f}"
        print(line + f" {len(r['busy']):>7} {r['mutate']:>9.2f}")  # type: ignore[arg-type]
    print("\npushes: pushes in flight while the MUTATE ran (one at a time, one connection).")
    print("p99 x: p99 during the MUTATE / p99 idle.")


if __name__ == "__main__":
    main()

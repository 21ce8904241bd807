"""What unique and expiring jobs cost a push, and what they cost a push without them.

Two measurements, each variant taking turns so that a busy machine slows all alike:

* in process (the dispatcher alone, memory storage, no socket; the steadiest number):
  microseconds per PUSH and per FETCH+ACK for a plain job, a job with an unrelated
  ``custom`` object, a unique job (``unique_for``, distinct args: every push takes a lock)
  and a unique + expiring one;
* over TCP against ``werk server`` processes (memory and SQLite): single PUSHes per
  second on one connection, plain and unique.

Variants: ``now`` (this tree, its standard extensions: unique, expiring, throttles),
``bare`` (this tree with no extension: the manager's own path) and, with ``--baseline
SRC``, another source tree (``git archive`` of an older commit), where the unique rows are
only jobs with a ``custom`` object (no extension to see it).

Usage::

    python benchmarks/unique.py [--quick] [--baseline ../old/src]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import Raw, Server

BARE = "bare"
KINDS: dict[str, Callable[[int], dict[str, object]]] = {
    "plain": lambda i: {"jid": f"p-{i:012d}", "jobtype": "Bench", "args": [i, "payload"]},
    "custom": lambda i: {
        "jid": f"c-{i:012d}",
        "jobtype": "Bench",
        "args": [i, "payload"],
        "custom": {"trace": f"t-{i}"},
    },
    "unique": lambda i: {
        "jid": f"u-{i:012d}",
        "jobtype": "Bench",
        "args": [i, "payload"],
        "custom": {"unique_for": 3600},
    },
    "unique+expiring": lambda i: {
        "jid": f"e-{i:012d}",
        "jobtype": "Bench",
        "args": [i, "payload"],
        "custom": {"unique_for": 3600, "expires_in": 600},
    },
}


def child(variant: str, n: int) -> None:
    """Time the dispatcher alone for each kind of job; print us/job as JSON."""
    import gc

    from werk.server._clock import ManualClock
    from werk.server._dispatch import ClientState, ServerStats, dispatch
    from werk.server._manager import Manager
    from werk.server._periodic import PeriodicTasks
    from werk.server._storage import MemoryStorage

    extensions: list[object] = []
    if variant != BARE:
        try:
            from werk.server._config import ServerConfig
            from werk.server._features import standard_extensions

            extensions = list(standard_extensions(ServerConfig()))
        except ImportError:
            pass
    m = Manager(MemoryStorage(), ManualClock(1_700_000_000), extensions=extensions)  # type: ignore[arg-type]
    state = ClientState(m, ServerStats(0.0), PeriodicTasks(m), "w")
    for i in range(2000):  # warm up
        dispatch(state, b"PUSH " + json.dumps({**KINDS["plain"](i), "jid": f"w-{i:09d}"}).encode())
        dispatch(state, b"FETCH default")
        state.fetched = None
    gc.disable()
    out: dict[str, float] = {}
    for kind, make in KINDS.items():
        queue = "q-" + kind.replace("+", "-")
        lines = [b"PUSH " + json.dumps({**make(i), "queue": queue}).encode() for i in range(n)]
        start = time.perf_counter()
        for line in lines:
            reply = dispatch(state, line)
        out["push " + kind] = (time.perf_counter() - start) / n * 1e6
        assert reply == b"+OK\r\n", reply
        fetch = b"FETCH " + queue.encode()
        start = time.perf_counter()
        for _ in range(n):
            dispatch(state, fetch)
            res = state.fetched
            state.fetched = None
            assert res is not None
            dispatch(state, b'ACK {"jid":"' + res.jid.encode() + b'"}')
        out["fetch+ack " + kind] = (time.perf_counter() - start) / n * 1e6
    print(json.dumps(out))


def in_process(sources: dict[str, str | None], n: int, rounds: int) -> dict[str, dict[str, float]]:
    best: dict[str, dict[str, float]] = {v: {} for v in sources}
    for _ in range(rounds):
        for variant, src in sources.items():
            env = dict(os.environ)
            if src not in (None, BARE):
                env["PYTHONPATH"] = str(src)
            cmd = [sys.executable, __file__, "--child", variant, str(n)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            for name, value in json.loads(done.stdout).items():
                best[variant][name] = min(best[variant].get(name, 1e9), value)
    return best


def tcp_push(port: int, n: int, kind: str, tag: str) -> float:
    c = Raw(port)
    make = KINDS[kind]
    lines = [
        b"PUSH "
        + json.dumps({**make(i), "jid": f"{tag}-{i:012d}", "args": [tag, i]}).encode()
        + b"\r\n"
        for i in range(n)
    ]
    start = time.perf_counter()
    for line in lines:
        c.sock.sendall(line)
        assert c.line() == b"+OK"
    return n / (time.perf_counter() - start)


def over_tcp(
    sources: dict[str, str | None], n: int, rounds: int
) -> dict[str, dict[str, dict[str, float]]]:
    """``{storage: {variant: {kind: best pushes/s}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for storage in ("memory", "sqlite"):
        servers = {v: Server(storage, s) for v, s in sources.items() if v != BARE}
        table: dict[str, dict[str, float]] = {v: {} for v in servers}
        try:
            for r in range(rounds):
                for kind in ("plain", "unique"):
                    for variant, server in servers.items():
                        rate = tcp_push(server.port, n, kind, f"{kind}-{r}")
                        table[variant][kind] = max(table[variant].get(kind, 0.0), rate)
        finally:
            for server in servers.values():
                server.close()
        out[storage] = table
    return out


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--baseline", default=None, help="source tree (src/) to compare with")
    opts = parser.parse_args()
    n, rounds = (2_000, 3) if opts.quick else (20_000, 7)
    sources: dict[str, str | None] = {}
    if opts.baseline:
        sources["before"] = os.path.abspath(opts.baseline)
    sources.update({BARE: BARE, "now": None})
    variants = list(sources)
    steady = in_process(sources, n, rounds)
    print(f"\n{f'in-process us/job (best of {rounds})':34}" + "".join(f"{v:>10}" for v in variants))
    for name in steady["now"]:
        print(f"{name:34}" + "".join(f"{steady[v][name]:>10.2f}" for v in variants))
    print(f"\n{'ratios (now / other, below 1 = cheaper)':42}")
    now = steady["now"]
    for name in now:
        others = "".join(
            f"  now/{v}={now[name] / steady[v][name]:.2f}" for v in variants if v != "now"
        )
        vs_plain = now[name] / now[name.rsplit(" ", 1)[0] + " plain"]
        print(f"{name:34}{others}  /plain={vs_plain:.2f}")
    tcp = over_tcp(sources, n // 4, max(3, rounds // 2))
    print("\nover TCP, PUSH/s on one connection (best of rounds)")
    for storage, table in tcp.items():
        for variant, rates in table.items():
            ratio = rates["unique"] / rates["plain"]
            print(
                f"  {storage:7} {variant:7} plain {rates['plain']:>9,.0f}  "
                f"unique {rates['unique']:>9,.0f}  unique/plain {ratio:.2f}"
            )


if __name__ == "__main__":
    main()

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
import sys
from collections.abc import Callable

from _inproc import Dispatcher, best_of
from _raw import raw_push
from _server import Server

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

    extensions: list[object] = []
    if variant != BARE:
        try:
            from werk.server._config import ServerConfig
            from werk.server._features import standard_extensions

            extensions = list(standard_extensions(ServerConfig()))
        except ImportError:
            pass
    d = Dispatcher(extensions=extensions)
    d.warm_up()
    gc.disable()
    out: dict[str, float] = {}
    for kind, make in KINDS.items():
        queue = "q-" + kind.replace("+", "-")
        lines = [b"PUSH " + json.dumps({**make(i), "queue": queue}).encode() for i in range(n)]
        took, reply = d.pushes(lines)
        out["push " + kind] = took / n * 1e6
        assert reply == b"+OK\r\n", reply
        out["fetch+ack " + kind] = d.fetch_acks(queue.encode(), n) / n * 1e6
    print(json.dumps(out))


def in_process(sources: dict[str, str | None], n: int, rounds: int) -> dict[str, dict[str, float]]:
    return best_of(
        rounds,
        {
            variant: (
                [sys.executable, __file__, "--child", variant, str(n)],
                None if src == BARE else src,
            )
            for variant, src in sources.items()
        },
    )


def tcp_push(address: tuple[str, int], n: int, kind: str, tag: str) -> float:
    make = KINDS[kind]
    return raw_push(
        address, n, lambda i, tag: {**make(i), "jid": f"{tag}-{i:012d}", "args": [tag, i]}, tag
    )


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
                        rate = tcp_push(server.address, n, kind, f"{kind}-{r}")
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

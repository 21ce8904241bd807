"""What does a worker's slot cost per job, without the network?

A slot (``werk.worker._slot.Slot``, driven as the thread executor drives it) runs no-op jobs
against a client that answers at once, so only werk's per-job work is timed: reading FETCH's
reply, the ledger, the run (context, middleware), the ACK line, the next FETCH. The baseline
is the least any worker must do per job: parse the reply, build the Job, call the handler,
build the ACK line. The difference is what the slot machine, the ledger and ``JobRun`` add.

Usage::

    python benchmarks/slot.py            # 200000 jobs per row
    python benchmarks/slot.py -n 50000
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import werk  # noqa: E402
from werk._job import Job  # noqa: E402
from werk._protocol import command_lines  # noqa: E402
from werk._protocol.replies import fetched_payload  # noqa: E402
from werk._protocol.resp import Reply  # noqa: E402
from werk.worker._slot import Slot  # noqa: E402
from werk.worker._threads import ThreadSlots, drive  # noqa: E402

PAYLOAD = (
    b'{"jid":"0123456789abcdef","jobtype":"noop","args":[],"queue":"bench",'
    b'"created_at":"2026-01-01T00:00:00.000000Z","enqueued_at":"2026-01-01T00:00:00.000000Z",'
    b'"retry":25}'
)


class Instant:
    """A client whose FETCH returns a job at once, ``n`` times; then ``done()`` is called."""

    def __init__(self, n: int, done: Callable[[], None]) -> None:
        self.left = n
        self.done = done

    def execute_many(self, lines: Sequence[bytes], *, blocking: bool = False) -> list[Reply]:
        replies: list[Reply] = ["OK"] * (len(lines) - 1)
        if not blocking:
            return [*replies, "OK"]
        self.left -= 1
        if self.left < 0:
            self.done()
            return [*replies, None]
        return [*replies, PAYLOAD]


class Mark(werk.Middleware):
    """A middleware with one cheap hook, as a metrics middleware would have."""

    def before_process(self, ctx: werk.JobContext) -> None:
        pass


def bare(n: int) -> None:
    def noop() -> None: ...

    for _ in range(n):
        payload = fetched_payload(PAYLOAD)
        assert payload is not None
        job = Job.from_dict(payload)
        noop(*job.args)
        command_lines.ack(job.jid)


def slot(n: int, middleware: bool) -> None:
    app = werk.App(middleware=[Mark()] if middleware else [])

    @app.job
    def noop() -> None: ...

    worker = werk.Worker(app, "tcp://127.0.0.1:1", concurrency=1)
    crew = worker._crew
    executor = ThreadSlots(crew)

    def stop() -> None:
        crew.fetching = False

    drive(Slot(crew), Instant(n, stop), functools.partial(executor.invoke, 0))  # type: ignore[arg-type]
    assert worker.processed == n


def cpu_us(fn: Callable[[], None], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--jobs", type=int, default=200_000)
    n = parser.parse_args().jobs
    rows = [
        ("parse, Job, call, ACK line", cpu_us(lambda: bare(n), n)),
        ("slot, no middleware", cpu_us(lambda: slot(n, False), n)),
        ("slot, one middleware hook", cpu_us(lambda: slot(n, True), n)),
    ]
    base = rows[0][1]
    print(f"\nper-job CPU, {n} no-op jobs, no network (best of 3), python {sys.version.split()[0]}")
    print(f"{'':30} {'us/job':>8} {'vs bare':>8}")
    for label, us in rows:
        print(f"{label:30} {us:8.2f} {us / base:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

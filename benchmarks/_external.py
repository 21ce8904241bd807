"""``--external LABEL=COMMAND``: a program that is not werk's (built elsewhere, in any
language), measured as one more row in the same interleaved rounds as werk's own.

The contract: COMMAND runs through the shell with FAKTORY_URL (the server under test),
BENCH_ROW (``push``, ``pushb``, ``fetch+ack`` or ``worker``), BENCH_JOBS (N), BENCH_QUEUE
(the queue the row uses) and, for ``worker``, BENCH_CONCURRENCY in its environment; the
harness has filled the queue beforehand for ``fetch+ack`` and ``worker`` exactly as for
werk's rows. It prints one JSON line on stdout: ``{"jobs_per_s": float,
"cpu_us_per_job": float}`` (its own rate and its own CPU per job)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess


def option(value: str) -> tuple[str, str]:
    """An argparse type: ``LABEL=COMMAND`` as (label, command)."""
    label, sep, command = value.partition("=")
    if not sep or not label.strip() or not command.strip():
        raise argparse.ArgumentTypeError(f"not LABEL=COMMAND: {value!r}")
    return label.strip(), command


def run(command: str, url: str, row: str, n: int, queue: str, **extra: object) -> dict[str, float]:
    """Run one external measurement: ``{"jobs_per_s": ..., "cpu_us_per_job": ...}``."""
    env = dict(os.environ, FAKTORY_URL=url, BENCH_ROW=row, BENCH_JOBS=str(n), BENCH_QUEUE=queue)
    env.update({f"BENCH_{key.upper()}": str(value) for key, value in extra.items()})
    out = subprocess.run(command, shell=True, env=env, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    if out.returncode or not lines:
        raise RuntimeError(f"{command!r} ({row}) failed:\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1])
    return {key: float(result[key]) for key in ("jobs_per_s", "cpu_us_per_job")}


def add_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--external``, repeatable, for a script whose rows are ``what``; the contract in
    the help's epilog."""
    parser.add_argument(
        "--external",
        action="append",
        default=[],
        type=option,
        metavar="LABEL=COMMAND",
        help=f"a program that is not werk's, measured as {what} (repeatable)",
    )
    parser.epilog = (
        "--external: COMMAND runs through the shell with FAKTORY_URL, BENCH_ROW, BENCH_JOBS"
        " and BENCH_QUEUE (BENCH_CONCURRENCY for worker) in its environment, the queue"
        ' filled first for fetch+ack and worker; it prints {"jobs_per_s": float,'
        ' "cpu_us_per_job": float} on one line. --url: never a server whose data you need'
        " (it is FLUSHed)."
    )

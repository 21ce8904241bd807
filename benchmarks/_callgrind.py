"""Instructions per job under valgrind's callgrind: runs of N and 2N jobs, the difference
over N, so that start-up and shutdown cancel out. Unlike wall-clock and CPU time, the
count does not depend on what else the machine is doing."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

VALGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]


def run(argv: list[str], env: dict[str, str], timeout: float = 1800) -> tuple[int, str]:
    """Run ``argv`` under callgrind: (instructions it executed, its standard output)."""
    out = subprocess.run(
        [*VALGRIND, *argv], env=env, capture_output=True, text=True, timeout=timeout
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode or not found:
        raise RuntimeError(f"{argv} failed under callgrind:\n{out.stderr[-3000:]}")
    return int(found[1]), out.stdout


def per_job(count: Callable[[int], int], n: int) -> float:
    """Instructions per job, ``count(size)`` counting a run of ``size`` jobs."""
    return (count(2 * n) - count(n)) / n

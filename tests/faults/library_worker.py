"""``Worker.run()`` as the main program of a script, the way a library user runs a worker.

``python -m tests.faults.library_worker EXECUTOR SHUTDOWN_TIMEOUT CONCURRENCY`` works the jobs of
:mod:`tests.faults.fault_jobs` on ``FAKTORY_URL`` until TERM/INT, then lets the interpreter
exit normally (no ``os._exit``: what ``werk worker`` adds is not used here).
"""

from __future__ import annotations

import logging
import sys

from tests.faults.fault_jobs import app

import werk


def main(executor: str, shutdown_timeout: str, concurrency: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    worker = werk.Worker(
        app,
        concurrency=int(concurrency),
        shutdown_timeout=float(shutdown_timeout),
        executor=executor,  # type: ignore[arg-type]
    )
    worker.run()


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""``werk worker --reload``: rerun the worker when a watched Python file changes.

A parent process watches the files (with ``watchfiles``, the ``werk[reload]`` extra) and runs
the real worker as a child. On a change it sends the child TERM, waits for it to finish its
running jobs (within its ``--shutdown-timeout``), and only then starts a new child, so a job is
never lost nor run by two generations of the code at once. For development only.

Example::

    $ werk worker myproject.jobs --reload --reload-dir src
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from werk._errors import ConfigurationError

__all__ = ["child_argv", "run_with_reload"]

log = logging.getLogger("werk.reload")


def child_argv(argv: Sequence[str]) -> list[str]:
    """The command line of the worker child: ``argv`` without the reload options.

    Example::

        child_argv(["worker", "jobs", "--reload", "--reload-dir", "src"])  # ["worker", "jobs"]
    """
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--reload":
            pass
        elif arg == "--reload-dir":
            skip = True
        elif not arg.startswith("--reload-dir="):
            out.append(arg)
    return out


def run_with_reload(argv: Sequence[str], paths: Sequence[str]) -> int:
    """Run ``werk <argv>`` as a child; restart it gracefully when a ``.py`` in ``paths`` changes.

    Returns the exit code of the last child once TERM or INT stops the parent (forwarded to
    the child once, so it shuts down gracefully).

    Example::

        run_with_reload(["worker", "myproject.jobs"], ["."])
    """
    try:
        from watchfiles import PythonFilter, watch
    except ImportError as exc:
        raise ConfigurationError("--reload needs watchfiles: pip install 'werk[reload]'") from exc

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    command = [sys.executable, "-m", "werk", *argv]
    # A session of its own: a terminal's Ctrl-C reaches only the parent, which forwards one TERM
    # (a second signal to the worker would stop it at once, without finishing its jobs).
    child = subprocess.Popen(command, start_new_session=True)
    log.info("reload: watching %s for changes to .py files", ", ".join(paths))
    try:
        for changes in watch(*paths, watch_filter=PythonFilter(), stop_event=stop):
            names = sorted({path for _, path in changes})
            log.info("reload: %s changed; stopping worker %d", ", ".join(names), child.pid)
            _stop(child)
            child = subprocess.Popen(command, start_new_session=True)
            log.info("reload: started a new worker (pid %d)", child.pid)
    finally:
        code = _stop(child)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def _stop(child: subprocess.Popen[bytes]) -> int:
    """TERM the child (if it still runs) and wait: it finishes its jobs within its own deadline."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    return child.wait()

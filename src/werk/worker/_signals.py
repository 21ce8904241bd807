"""POSIX signals for a worker: TERM/INT terminate (twice: now), TSTP quiets, TTIN dumps stacks.

The handlers only record the signal and set an event; the worker's main loop does the work
(signal handlers run between two bytecodes of the main thread, where taking locks or
logging can deadlock).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["SIGNALS", "dump_stacks", "install_signals"]

log = logging.getLogger("werk.worker.signals")

SIGNALS = ("SIGTERM", "SIGINT", "SIGTSTP", "SIGTTIN")


def install_signals(on_signal: Callable[[str], None]) -> Callable[[], None]:
    """Route the worker's signals to ``on_signal(name)``; returns a function that restores.

    Only possible in the main thread; elsewhere nothing is installed (the caller drives
    quiet/terminate itself, as tests and embedding applications do).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signal.Signals(signum).name)

    for name in SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None:  # Windows has only TERM and INT
            continue
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def dump_stacks(logger: logging.Logger = log) -> None:
    """Log the current stack of every thread (TTIN)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    frames = sys._current_frames()
    parts = [f"{len(frames)} threads:"]
    for ident, frame in frames.items():
        parts.append(f"--- thread {names.get(ident, '?')} ({ident})")
        parts.append("".join(traceback.format_stack(frame)).rstrip())
    logger.warning("\n".join(parts))

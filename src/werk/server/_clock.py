"""Where the server gets the time: the system clock, or a manual clock that tests advance.

Every time-dependent rule of the server (reservation expiry, scheduled and retry sets,
dead-set retention, worker heartbeats, the 2 s FETCH and handshake deadlines) reads
``clock.now()``. With a :class:`ManualClock` nothing happens until a test moves time on,
so a test of a 60 s reservation runs in milliseconds.

Example::

    >>> clock = ManualClock(1_700_000_000.0)
    >>> clock.advance(61)
    >>> clock.now()
    1700000061.0
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from werk._errors import ConfigurationError

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now() -> float`` (Unix seconds) and a ``manual`` flag.

    Example::

        >>> class Frozen:
        ...     manual = True
        ...     def now(self) -> float:
        ...         return 1_700_000_000.0
        >>> isinstance(Frozen(), Clock), isinstance(ManualClock(0), Clock)
        (True, True)
    """

    manual: bool

    def now(self) -> float:
        """Current time in Unix seconds."""
        ...


class SystemClock:
    """The wall clock (``time.time()``), the default."""

    manual = False

    # time.time itself (no Python frame per call): the per-job path reads the clock.
    now = staticmethod(time.time)
    """Current wall-clock time in Unix seconds."""


class ManualClock:
    """A clock that only moves when told to; listeners hear about every move.

    The server subscribes so that advancing the clock runs the periodic tasks that came
    due and expires FETCH and handshake deadlines. Thread-safe: a test thread may advance
    the clock of a server running in another thread (use
    :meth:`werk.server.EmbeddedServer.advance` to also wait until the server caught up).

    Example::

        >>> clock = ManualClock(100.0)
        >>> clock.set(150.5)
        >>> clock.now()
        150.5
    """

    manual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[float], None]] = []

    def now(self) -> float:
        """The current manual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (a negative value is a
        :class:`~werk.ConfigurationError`)."""
        if seconds < 0:
            raise ConfigurationError("a clock cannot go backwards")
        self.set(self._now + seconds)

    def set(self, when: float) -> None:
        """Jump to ``when`` (Unix seconds); earlier than now is ignored."""
        with self._lock:
            if when <= self._now:
                return
            self._now = float(when)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(self._now)

    def subscribe(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(now)`` after every move."""
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[float], None]) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

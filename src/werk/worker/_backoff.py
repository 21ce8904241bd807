"""Waiting politely: capped exponential back-off with jitter, one log line per outage, and a
stop signal that sets itself at a deadline.

Every connection of a worker (fetch slots, heartbeat) reconnects on its own, but an outage
is one event: :class:`Outage` makes sure it is logged once when it starts and once when the
first connection comes back, however many connections notice it.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from werk._errors import NetworkError, ProtocolError

__all__ = ["Backoff", "Deadline", "Outage", "reconnectable"]

log = logging.getLogger("werk.worker.backoff")


def reconnectable(exc: BaseException) -> bool:
    """True for errors after which reconnecting (with back-off) is the answer."""
    return isinstance(exc, (NetworkError, ProtocolError))


class Backoff:
    """Delays for successive retries: ``base * 2**n`` capped at ``cap``, with "equal jitter".

    Half of each delay is fixed and half random, so many connections that failed together
    do not retry together, and a delay is never zero (no busy loop).
    """

    __slots__ = ("_rng", "attempts", "base", "cap")

    def __init__(self, base: float = 0.1, cap: float = 10.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next attempt (grows with each call until :meth:`reset`)."""
        ceiling = min(self.cap, self.base * float(1 << min(self.attempts, 30)))
        self.attempts += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """Start over after a success."""
        self.attempts = 0


class Outage:
    """Shared by all connections of one worker: logs the start and the end of an outage once.

    The first :meth:`failed` logs "lost the Faktory server"; later ones are silent until the
    first :meth:`recovered`, which logs how long it took.
    """

    def __init__(self, where: str, logger: logging.Logger | None = None) -> None:
        self.where = where
        self._log = logger or log
        self._lock = threading.Lock()
        self._since: float | None = None
        self.count = 0
        """Outages so far (each one, however many connections noticed it)."""
        self._past = 0.0  # seconds of the outages that ended

    @property
    def active(self) -> bool:
        """True between a failure and the next successful (re)connection."""
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        """A connection failed; log it if this is the start of an outage."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
            self.count += 1
        self._log.warning(
            "lost the Faktory server at %s (%s: %s); reconnecting with back-off",
            self.where,
            type(exc).__name__,
            exc,
        )

    def recovered(self) -> None:
        """A connection succeeded; log the end of the outage if there was one."""
        if self._since is None:  # fast path, no lock on every command
            return
        lasted = 0.0
        with self._lock:
            since, self._since = self._since, None
            if since is not None:
                lasted = time.monotonic() - since
                self._past += lasted
        if since is not None:
            self._log.warning(
                "reconnected to the Faktory server at %s after %.1f s", self.where, lasted
            )

    def seconds(self) -> float:
        """Seconds spent in outages so far, the current one included."""
        with self._lock:
            since = self._since
            return self._past + (0.0 if since is None else time.monotonic() - since)


class Deadline:
    """A stop signal (like a set-once :class:`threading.Event`) that sets itself ``seconds``
    from now: for work that must end by then whatever happens, such as the last reports."""

    __slots__ = ("_end",)

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def is_set(self) -> bool:
        """True once the deadline has passed."""
        return time.monotonic() >= self._end

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep ``timeout`` seconds, or until the deadline if that comes first."""
        left = self._end - time.monotonic()
        if timeout is not None:
            left = min(left, timeout)
        if left > 0:
            time.sleep(left)
        return self.is_set()

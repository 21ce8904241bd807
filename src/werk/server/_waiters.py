"""FETCHes blocked on empty queues, longest-blocked first (Redis ``BRPOP`` order).

A :class:`Waiter` sits in the line of every queue it named; the first job pushed to any
of them goes to the waiter that has waited longest on that queue, which then leaves all
its lines at once.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from werk.server._sets import Reservation

__all__ = ["Waiter", "WaitingFetches"]


class Waiter:
    """A FETCH blocked on empty queues; ``deliver`` gets the reservation (or None)."""

    __slots__ = ("deliver", "done", "queues", "wid")

    def __init__(
        self, queues: Sequence[str], wid: str, deliver: Callable[[Reservation | None], None]
    ):
        self.queues = queues
        self.wid = wid
        self.deliver = deliver
        self.done = False


class WaitingFetches:
    """The blocked FETCHes of a server, in one line per queue."""

    __slots__ = ("_lines", "lines")

    def __init__(self) -> None:
        self._lines: dict[str, deque[Waiter]] = {}
        # Read-only outside: a queue no FETCH waits for is not in it (a PUSH's fast path).
        self.lines: Mapping[str, deque[Waiter]] = self._lines

    def __len__(self) -> int:
        """How many FETCHes wait (each counted once, whatever the number of its queues)."""
        return len({id(w) for line in self._lines.values() for w in line if not w.done})

    def add(self, waiter: Waiter) -> None:
        """Put a FETCH at the end of the line of each of its queues."""
        for name in waiter.queues:
            self._lines.setdefault(name, deque()).append(waiter)

    def remove(self, waiter: Waiter) -> None:
        """Take a FETCH out of every line (it was served, timed out or its client left)."""
        waiter.done = True
        lines = self._lines
        for name in waiter.queues:
            line = lines.get(name)
            if line is not None:
                with contextlib.suppress(ValueError):
                    line.remove(waiter)
                if not line:
                    del lines[name]

    def first(self, queue: str) -> Waiter | None:
        """The FETCH that has waited longest on ``queue``, now out of every line; None if
        nobody waits for it."""
        line = self._lines.get(queue)
        while line:
            waiter = line.popleft()
            if not waiter.done:
                self.remove(waiter)
                return waiter
        return None

    def peek(self, queue: str, accept: Callable[[Waiter], bool] | None) -> Waiter | None:
        """The FETCH that has waited longest on ``queue`` among those ``accept`` lets take
        a job from it (every one when None), left where it is; None if there is none."""
        for waiter in self._lines.get(queue, ()):
            if not waiter.done and (accept is None or accept(waiter)):
                return waiter
        return None

"""Freeing big containers a slice at a time, between other clients' commands.

QUEUE REMOVE of a queue of a million jobs, FLUSH and MUTATE clear drop whole containers at
once; what they drop is gone for every client at that moment, but freeing a million job
objects takes a quarter of a second of the event loop. The manager hands such containers
to a :class:`Releaser` (``manager.release``), which frees a slice of each per loop turn.

Example::

    >>> import asyncio
    >>> async def main():
    ...     release = Releaser(asyncio.get_running_loop(), per_slice=2)
    ...     release({i: str(i) for i in range(5)})
    ...     pending = release.pending
    ...     while release.pending:
    ...         await asyncio.sleep(0)
    ...     return pending, release.pending
    >>> asyncio.run(main())
    (5, 0)
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from werk.server._queue import JobQueue

__all__ = ["PER_SLICE", "Releaser"]

PER_SLICE = 20_000
"""Items freed per loop turn: a few milliseconds for jobs of a few hundred bytes."""


class Releaser:
    """Frees dicts, deques, lists and job queues ``per_slice`` items per event-loop turn
    (see the module docstring); anything else is dropped at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, per_slice: int = PER_SLICE) -> None:
        self.loop = loop
        self.per_slice = per_slice
        self._queue: deque[Any] = deque()
        self._scheduled = False

    @property
    def pending(self) -> int:
        """Items still waiting to be freed."""
        return sum(len(c) for c in self._queue)

    def __call__(self, container: object) -> None:
        if not isinstance(container, dict | deque | list | JobQueue) or not container:
            return
        self._queue.append(container)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        budget = self.per_slice
        queue = self._queue
        while queue and budget > 0:
            container = queue[0]
            take = container.popitem if isinstance(container, dict) else container.pop
            n = min(budget, len(container))
            for _ in range(n):
                take()
            budget -= n
            if not container:
                queue.popleft()
        if queue and not self.loop.is_closed():
            self._scheduled = True
            self.loop.call_soon(self._run)

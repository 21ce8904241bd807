"""Which queues a FETCH names, and in which order (strict, weighted, random).

* ``strict``: the same ordered list on every FETCH; earlier queues always win.
* ``weighted``: each FETCH lists every queue, in an order drawn so that a queue comes
  first with probability proportional to its weight (no queue is ever starved).
* ``random``: weighted with equal weights.

Example::

    >>> QueueSelector.create([("critical", 3), ("default", 1)], "strict").next_line()
    b'FETCH critical default\\r\\n'
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Union

from werk._errors import ConfigurationError
from werk._job import QUEUE_NAME_RE
from werk._protocol import command_lines as commands

__all__ = ["QueueSelector", "QueueSpec", "Strategy", "parse_queue_arg", "parse_queues"]

Strategy = Literal["strict", "weighted", "random"]
QueueSpec = Union[str, tuple[str, int]]  # noqa: UP007 - a runtime alias on 3.10


def parse_queue_arg(text: str) -> tuple[str, int]:
    """``"critical,3"`` -> ``("critical", 3)``; ``"default"`` -> ``("default", 1)``.

    Example::

        >>> parse_queue_arg("bulk,2")
        ('bulk', 2)
    """
    name, _, weight = text.partition(",")
    name = name.strip()
    try:
        value = int(weight) if weight.strip() else 1
    except ValueError:
        raise ConfigurationError(f"queue weight must be an integer: {text!r}") from None
    return _checked(name, value)


def _checked(name: str, weight: int) -> tuple[str, int]:
    if not isinstance(name, str) or QUEUE_NAME_RE.match(name) is None:
        raise ConfigurationError(f"queue names must match [a-zA-Z0-9._-]+, got {name!r}")
    if not isinstance(weight, int) or weight < 1:
        raise ConfigurationError(f"queue weight must be a positive integer: {name}={weight!r}")
    return name, weight


def parse_queues(queues: Iterable[QueueSpec] | Mapping[str, int] | None) -> list[tuple[str, int]]:
    """Normalise the ``queues`` argument of :class:`~werk.Worker` to ``[(name, weight)]``."""
    if queues is None:
        return [("default", 1)]
    if isinstance(queues, str):
        queues = [queues]
    items: Iterable[QueueSpec] = (
        list(queues.items()) if isinstance(queues, Mapping) else list(queues)
    )
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for item in items:
        pair = parse_queue_arg(item) if isinstance(item, str) else _checked(*item)
        if pair[0] in seen:
            raise ConfigurationError(f"queue {pair[0]!r} is listed twice")
        seen.add(pair[0])
        out.append(pair)
    if not out:
        raise ConfigurationError("a worker needs at least one queue")
    return out


class QueueSelector:
    """Produces the FETCH line for each fetch, following a strategy."""

    def __init__(self, queues: Sequence[tuple[str, int]], strategy: Strategy = "strict") -> None:
        if strategy not in ("strict", "weighted", "random"):
            raise ConfigurationError(
                f"queue_strategy must be strict, weighted or random, not {strategy!r}"
            )
        self.queues = list(queues)
        self.strategy = strategy
        self._names = [name for name, _ in self.queues]
        weights = [1 if strategy == "random" else w for _, w in self.queues]
        self._weights = weights
        self._strict_line = commands.fetch(self._names)
        # One queue, or all weights equal under "strict": nothing to draw.
        self._fixed = strategy == "strict" or len(self._names) == 1
        self._rng = random.Random()

    @classmethod
    def create(
        cls, queues: Iterable[QueueSpec] | Mapping[str, int] | None, strategy: Strategy = "strict"
    ) -> QueueSelector:
        """Build from the user's ``queues`` argument."""
        return cls(parse_queues(queues), strategy)

    def order(self) -> list[str]:
        """The queue names for the next FETCH, in priority order."""
        if self._fixed:
            return list(self._names)
        # Weighted draw without replacement (Efraimidis-Spirakis): key = u ** (1 / w),
        # largest first. P(queue first) is proportional to its weight, as in the Go worker's
        # repeat-shuffle-dedupe, without building a list of sum(weights) entries.
        rng = self._rng.random
        keyed = sorted(
            ((rng() ** (1.0 / w), n) for n, w in zip(self._names, self._weights, strict=True)),
            reverse=True,
        )
        return [n for _, n in keyed]

    def next_line(self) -> bytes:
        """The FETCH command line for the next fetch."""
        if self._fixed:
            return self._strict_line
        return commands.fetch(self.order())

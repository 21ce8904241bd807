"""Memory storage: nothing is written anywhere (``werk server --storage memory``).

The server's in-memory state is the only copy; a restart starts empty. Every method is a
no-op, so the per-job path costs nothing extra.

Example::

    >>> from werk.server import EmbeddedServer
    >>> with EmbeddedServer(storage="memory") as srv:
    ...     srv.url.startswith("tcp://127.0.0.1:")
    True
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from werk.server.storage.base import Snapshot

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """A storage that stores nothing (see the module docstring)."""

    durable = False
    location = "memory"

    def load(self) -> Snapshot:
        """An empty snapshot."""
        return Snapshot()

    def queue_known(self, name: str, paused: bool) -> None:
        """No-op."""

    def queue_forget(self, name: str) -> None:
        """No-op."""

    def queue_push(self, eid: int, queue: str, jid: str, payload: bytes) -> None:
        """No-op."""

    def entry_add(
        self, eid: int, kind: int, name: str, score: float, jid: str, payload: bytes, since: float
    ) -> None:
        """No-op."""

    def entry_remove(self, eid: int) -> None:
        """No-op."""

    def clear_kind(self, kind: int) -> None:
        """No-op."""

    def counter_add(self, name: str, delta: int) -> None:
        """No-op."""

    def flush_all(self) -> None:
        """No-op."""

    def barrier(self) -> asyncio.Future[None] | None:
        """Always None: nothing to wait for."""
        return None

    def after_commit(self, callback: Callable[[BaseException | None], None]) -> bool:
        """Always False: nothing is ever pending."""
        return False

    def flush(self) -> None:
        """No-op."""

    def close(self) -> None:
        """No-op."""

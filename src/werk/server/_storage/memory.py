"""Memory storage: nothing is written anywhere (``werk server --storage memory``).

The server's in-memory state is the only copy; a restart starts empty. Every method is
the base class's no-op, so the per-job path costs nothing extra.
"""

from __future__ import annotations

from werk.server._storage.base import Storage

__all__ = ["MemoryStorage"]


class MemoryStorage(Storage):
    """A storage that stores nothing (see the module docstring)."""

    durable = False
    location = "memory"

"""Memory storage: nothing is written anywhere (``werk server --storage memory``).

The server's in-memory state is the only copy; a restart starts empty. Every method is
the base class's no-op, so the per-job path costs nothing extra.

Example::

    >>> from werk.server import EmbeddedServer
    >>> with EmbeddedServer(storage="memory") as srv:
    ...     srv.url.startswith("tcp://127.0.0.1:")
    True
"""

from __future__ import annotations

from werk.server.storage.base import Storage

__all__ = ["MemoryStorage"]


class MemoryStorage(Storage):
    """A storage that stores nothing (see the module docstring)."""

    durable = False
    location = "memory"

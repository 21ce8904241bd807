"""Where the server keeps its state: :class:`SQLiteStorage` (durable, the default) or
:class:`MemoryStorage` (throwaway). Both implement :class:`Storage`."""

from __future__ import annotations

import os

from werk._errors import ConfigurationError
from werk.server._storage.base import (
    DEAD,
    QUEUE,
    RETRIES,
    SCHEDULED,
    WORKING,
    Snapshot,
    Storage,
    StoredEntry,
)
from werk.server._storage.memory import MemoryStorage
from werk.server._storage.sqlite import SQLiteStorage

__all__ = [
    "DEAD",
    "QUEUE",
    "RETRIES",
    "SCHEDULED",
    "WORKING",
    "MemoryStorage",
    "SQLiteStorage",
    "Snapshot",
    "Storage",
    "StoredEntry",
    "open_storage",
]

DB_FILE = "werk.sqlite3"


def open_storage(
    kind: str, data_dir: str | os.PathLike[str] | None = None, **options: object
) -> Storage:
    """Open ``"memory"`` or ``"sqlite"`` storage (the file ``werk.sqlite3`` in ``data_dir``)."""
    if kind == "memory":
        return MemoryStorage()
    if kind == "sqlite":
        if data_dir is None:
            raise ConfigurationError("sqlite storage needs a data directory")
        return SQLiteStorage(os.path.join(os.fspath(data_dir), DB_FILE), **options)  # type: ignore[arg-type]
    raise ConfigurationError(f"storage must be 'sqlite' or 'memory', not {kind!r}")

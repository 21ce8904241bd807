"""The server extensions werk's server runs unless it is given a list of its own.

``werk server`` and :class:`~werk.server.EmbeddedServer` call :func:`standard_extensions`
once per server (fresh instances: an extension serves one manager). Each feature adds its
extension here, and nothing else of the server needs to know it exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from werk.server._batches import Batches
from werk.server._config import ServerConfig
from werk.server._cron import Cron
from werk.server._expiring import ExpiringJobs
from werk.server._extension import Extension
from werk.server._throttles import Throttles
from werk.server._tracking import Tracking
from werk.server._unique import UniqueJobs

if TYPE_CHECKING:
    from werk.server._manager import Manager

__all__ = ["batches_of", "extension_of", "standard_extensions", "tracking_of"]

E = TypeVar("E", bound=Extension)


def standard_extensions(config: ServerConfig) -> list[Extension]:
    """New instances of the standard extensions for a server with ``config``, in the
    order their hooks should run: an extension that refuses pushes (unique jobs) before
    one that counts them (batches), since a job another extension refuses is never
    ``pushed``."""
    return [
        # Unique first: a duplicate is refused before any later extension counts it.
        UniqueJobs(),
        # Expiring only checks (and rewrites expires_in) at PUSH; at FETCH its discard
        # releases the job's unique lock (UniqueJobs.discarded).
        ExpiringJobs(),
        # Throttles guard their queues at FETCH (admit) and count the slots at reserve.
        Throttles(),
        Tracking(),
        # Batches count a member in ``pushed``: keep them after every extension whose
        # check_push may refuse a job (unique jobs), so a refused job is never counted.
        Batches(),
        # Cron last: its ticks are pushed through the whole pipeline (unique refuses a
        # tick whose previous job still holds the lock).
        Cron(),
    ]


def extension_of(manager: Manager, kind: type[E]) -> E | None:
    """The manager's extension of class ``kind`` (the first), or None if it runs none."""
    hooks = manager.hooks
    if hooks is not None:
        for ext in hooks.all:
            if isinstance(ext, kind):
                return ext
    return None


def batches_of(manager: Manager) -> Batches | None:
    """The manager's :class:`~werk.server._batches.Batches` (its read API serves the web
    UI), or None when the server runs without it."""
    return extension_of(manager, Batches)


def tracking_of(manager: Manager) -> Tracking | None:
    """The manager's :class:`~werk.server._tracking.Tracking` (its read API serves the
    web UI), or None when the server runs without it."""
    return extension_of(manager, Tracking)

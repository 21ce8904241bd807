"""The server extensions werk's server runs unless it is given a list of its own.

``werk server`` and :class:`~werk.server.EmbeddedServer` call :func:`standard_extensions`
once per server (fresh instances: an extension serves one manager). Each feature adds its
extension here, and nothing else of the server needs to know it exists.
"""

from __future__ import annotations

from werk.server._config import ServerConfig
from werk.server._cron import Cron
from werk.server._expiring import ExpiringJobs
from werk.server._extension import Extension
from werk.server._throttles import Throttles
from werk.server._unique import UniqueJobs

__all__ = ["standard_extensions"]


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
        # Cron last: its ticks are pushed through the whole pipeline (unique refuses a
        # tick whose previous job still holds the lock).
        Cron(),
    ]

"""The INFO builder: the reply body in the real server's JSON shape, keys in its order."""

from __future__ import annotations

import resource
import sys
import time
from typing import TYPE_CHECKING, Any

from werk.server._gojson import go_bytes, go_float

if TYPE_CHECKING:
    from werk.server._manager import Manager

__all__ = ["FAKTORY_VERSION", "info_json", "used_memory_mb"]

# The Faktory release whose wire behaviour werk's server reproduces.
FAKTORY_VERSION = "1.10.0"


def used_memory_mb() -> int:
    """Peak resident memory of this process in MiB (Go reports memory from the OS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024)


def _obj(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"


def _num(value: Any) -> str:
    return go_float(value) if isinstance(value, float) else str(value)


def info_json(
    m: Manager,
    task_stats: dict[str, dict[str, Any]],
    *,
    started: float,
    connections: int,
    commands: int,
    description: str = "Faktory",
    version: str = FAKTORY_VERSION,
) -> bytes:
    """The INFO bulk body (compact, Go's key order, map keys sorted); ``task_stats`` is
    :meth:`~werk.server._periodic.PeriodicTasks.stats`."""
    now = m.clock.now()
    sizes = m.queue_sizes()
    queues = _obj([(_esc(k), str(v)) for k, v in sizes.items()])
    sets = _obj(
        [
            ("dead", str(len(m.dead))),
            ("retries", str(len(m.retries))),
            ("scheduled", str(len(m.scheduled))),
            ("working", str(len(m.working))),
        ]
    )
    tasks = _obj(
        [
            (name, _obj([(k, _num(v)) for k, v in sorted(stats.items())]))
            for name, stats in task_stats.items()
        ]
    )
    counters = m.counters
    faktory = _obj(
        [
            ("queues", queues),
            ("sets", sets),
            ("tasks", tasks),
            ("total_failures", str(counters.get("failures", 0))),
            ("total_processed", str(counters.get("processed", 0))),
            ("total_enqueued", str(sum(sizes.values()))),
            ("total_queues", str(len(sizes))),
        ]
    )
    server = _obj(
        [
            ("description", f'"{description}"'),
            ("faktory_version", f'"{version}"'),
            ("uptime", str(max(0, int(now - started)))),
            ("connections", str(connections)),
            ("command_count", str(commands)),
            ("used_memory_mb", str(used_memory_mb())),
        ]
    )
    utc = time.strftime("%H:%M:%S UTC", time.gmtime(now))
    body = _obj(
        [
            ("now", f'"{m.now_string()}"'),
            ("server_utc_time", f'"{utc}"'),
            ("faktory", faktory),
            ("server", server),
        ]
    )
    return go_bytes(body)


def _esc(name: str) -> str:
    # Queue names are [a-zA-Z0-9._-]+ except those created from a stored payload.
    from json.encoder import encode_basestring

    return encode_basestring(name)[1:-1]

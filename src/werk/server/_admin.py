"""The operator's commands on whole queues and on everything: QUEUE PAUSE, RESUME, REMOVE
and LATENCY, FLUSH, and deleting chosen jobs from a queue (the web UI; no command does).

Functions over a :class:`~werk.server._manager.Manager`, which knows nothing of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from werk.server._extension import DELETED
from werk.server._gotime import parse_rfc3339
from werk.server._manager import Manager
from werk.server._sets import QueueItem

__all__ = [
    "delete_queue_item",
    "delete_queue_jobs",
    "flush",
    "latency",
    "pause",
    "remove_queue",
    "resume",
]


def pause(m: Manager, name: str) -> None:
    """QUEUE PAUSE one known queue (unknown names are ignored, as in Faktory)."""
    if name in m.queues:
        m.paused.add(name)
        m.storage.queue_known(name, True)


def resume(m: Manager, name: str) -> None:
    """QUEUE RESUME one known queue."""
    if name in m.queues:
        m.paused.discard(name)
        m.storage.queue_known(name, False)


def remove_queue(m: Manager, name: str) -> None:
    """QUEUE REMOVE: drop the queue, its jobs and its name (server extensions hear of
    each job with ``custom``, in the same turn)."""
    q = m.queues.pop(name, None)
    if q is not None:
        if m.follows_removals:  # read before the storage forgets the queue's jobs
            m.jobs_removed([(item.jid, item.payload) for item in q.custom_items()], DELETED)
        m.storage.queue_forget(name)
        m.release(q)
    m.paused.discard(name)


def latency(m: Manager, names: Sequence[str]) -> dict[str, float]:
    """QUEUE LATENCY: seconds since the oldest job of each queue was enqueued."""
    out: dict[str, float] = {}
    now = m.clock.now()
    for name in names:
        q = m.queues.get(name)
        if not q:
            out[name] = 0
            continue
        job = m.codec.loads(q[0].payload)
        out[name] = now - parse_rfc3339(job.get("enqueued_at") or "")
    return out


def flush(m: Manager) -> None:
    """FLUSH: erase jobs, sets, counters, stored queue names and pauses. Queue names,
    pauses, reservations and workers stay in memory until restart, as on the real server;
    extensions hear of it (their records are theirs to drop), not of each job."""
    for q in m.queues.values():
        if q:
            m.release(q.copy())  # then clear() only unlinks: nothing is freed yet
            q.clear()
    for s in (m.scheduled, m.retries, m.dead, m.working):
        m.release(s.clear())
    m.counters.clear()
    m.storage.flush_all()
    if m.hooks is not None:
        m.hooks.flushed()


def delete_queue_jobs(m: Manager, name: str, jids: Iterable[str]) -> int:
    """Delete the jobs with these jids from one queue; the others keep their order. The
    number deleted (durable once the storage has committed, like every change)."""
    q = m.queues.get(name)
    wanted = set(jids)
    if not q or not wanted:
        return 0
    doomed = [item for item in q if item.jid in wanted]
    return sum(delete_queue_item(m, name, item) for item in doomed)


def delete_queue_item(m: Manager, name: str, item: QueueItem) -> bool:
    """Delete one job from a queue if it is still there; whether it was. One scan of the
    queue in C, stopping where the job is (the web UI deletes a page at a time)."""
    q = m.queues.get(name)
    if not q:
        return False
    try:
        q.remove(item)  # ids are unique: equal means the same job
    except ValueError:
        return False
    m.storage.entry_remove(item.id)
    if item.custom:
        m.jobs_removed(((item.jid, item.payload),), DELETED)
    return True

"""MUTATE: kill, requeue, discard or clear jobs of the retries, scheduled or dead set.

Matching follows Faktory 1.9.2+: a ``jids`` filter wins (the payload must contain
``"jid":"<jid>"``), then ``regexp`` (a Redis glob applied to the whole job JSON, with
``jobtype`` checked as a substring when both are given), then ``jobtype`` alone; no
filter matches everything. Entries are visited in score order (Faktory's Redis scan order
is unspecified).

Example::

    >>> glob_to_regex(b'*"jobtype":"S1"*').match(b'{"jobtype":"S1"}') is not None
    True
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from werk._job import QUEUE_NAME_RE
from werk.server.gojson import GoJSONError
from werk.server.jobs import Operation
from werk.server.sets import SortedSet
from werk.server.storage import DEAD, RETRIES, SCHEDULED

if TYPE_CHECKING:
    from werk.server.manager import Manager

__all__ = ["MutateError", "glob_to_regex", "mutate"]


class MutateError(Exception):
    """A MUTATE the server refuses; ``str(exc)`` is the reply text."""


def glob_to_regex(pattern: bytes) -> re.Pattern[bytes]:
    """Compile a Redis glob (``*``, ``?``, ``[...]``, ``[^...]``, ``\\x``) to a regex."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        elif c == b"[":
            j = i + 1
            negate = j < n and pattern[j : j + 1] == b"^"
            if negate:
                j += 1
            body = []
            while j < n and pattern[j : j + 1] != b"]":
                if pattern[j : j + 1] == b"\\" and j + 1 < n:
                    j += 1
                    body.append(re.escape(pattern[j : j + 1]))
                elif (
                    pattern[j + 1 : j + 2] == b"-" and j + 2 < n and pattern[j + 2 : j + 3] != b"]"
                ):
                    lo, hi = sorted((pattern[j], pattern[j + 2]))
                    body.append(re.escape(bytes([lo])) + b"-" + re.escape(bytes([hi])))
                    j += 2
                else:
                    body.append(re.escape(pattern[j : j + 1]))
                j += 1
            i = j  # at "]" (or the end: Redis treats an unclosed class as closed)
            out.append(b"[" + (b"^" if negate else b"") + b"".join(body) + b"]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out) + rb"\Z", re.DOTALL)


def _quoted(key: str, value: str) -> bytes:
    return f'"{key}":{json.dumps(value, ensure_ascii=False)}'.encode("utf-8", "surrogatepass")


def _matcher(op: Operation) -> Callable[[bytes], bool]:
    if not op.has_filter:
        return lambda payload: True
    if op.jids:
        needles = [_quoted("jid", jid) for jid in op.jids]
        return lambda payload: any(payload.find(n) > 0 for n in needles)
    if op.regexp:
        rx = glob_to_regex(op.regexp.encode("utf-8", "surrogatepass"))
        if op.jobtype:
            needle = _quoted("jobtype", op.jobtype)
            return lambda payload: rx.match(payload) is not None and payload.find(needle) > 0
        return lambda payload: rx.match(payload) is not None
    if op.jobtype:
        needle = _quoted("jobtype", op.jobtype)
        return lambda payload: payload.find(needle) > 0
    return lambda payload: True


def mutate(m: Manager, op: Operation) -> None:
    """Apply a decoded MUTATE to the manager; MutateError carries the reply text."""
    if op.cmd not in ("clear", "kill", "discard", "requeue"):
        raise MutateError("unknown mutate operation")
    found: tuple[SortedSet, int] | None = {
        "retries": (m.retries, RETRIES),
        "dead": (m.dead, DEAD),
        "scheduled": (m.scheduled, SCHEDULED),
    }.get(op.target)
    if found is None:
        raise MutateError("invalid target for mutation command")
    target, kind = found
    if op.cmd == "clear" or (op.cmd == "discard" and not op.has_filter):
        # One stored change for the whole set, not one per job.
        m.storage.clear_kind(kind)
        target.clear()
        return
    match = _matcher(op)
    for entry in target.ordered():
        if not match(entry.payload):
            continue
        if op.cmd == "discard":
            target.remove(entry.id)
            m.storage.entry_remove(entry.id)
        elif op.cmd == "kill":
            target.remove(entry.id)
            m.storage.entry_remove(entry.id)
            m._set_add(m.dead, DEAD, m.clock.now() + 180 * 24 * 3600.0, entry.jid, entry.payload)
        else:
            try:
                job = m.codec.loads(entry.payload)
                queue = job.get("queue") or ""
                reserve_for = int(job.get("reserve_for") or 0)
            except (GoJSONError, AttributeError, TypeError, ValueError) as exc:
                raise MutateError(f"cannot unmarshal job payload: {exc}") from None
            if queue not in m.queues and not QUEUE_NAME_RE.match(queue):
                raise MutateError("queue names must match \\A[a-zA-Z0-9._-]+\\z")
            target.remove(entry.id)
            m.storage.entry_remove(entry.id)
            # The stored payload goes back unchanged: enqueued_at is not refreshed.
            m._queue_append(queue, entry.jid, reserve_for, entry.payload)

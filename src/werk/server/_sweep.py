"""The MUTATE sweep: kill, requeue, discard or clear jobs of the retries, scheduled or dead set.

Matching follows Faktory 1.9.2+: a ``jids`` filter wins (the payload must contain
``"jid":`` and the Go-quoted jid), then ``regexp`` (a Redis glob applied to the whole job JSON, see
:mod:`werk.server._glob`, with ``jobtype`` checked as a substring when both are given),
then ``jobtype`` alone; no filter matches everything. Entries are visited in score order
(Faktory's Redis scan order is unspecified).

A MUTATE runs as a :class:`Sweep`, one slice per :meth:`Sweep.step`; the connection takes
one step per event-loop turn, so a sweep over a million jobs never keeps other clients
waiting. The real server's MUTATE is no more atomic (a loop of ``ZSCAN`` calls, each a
separate Redis command), and what another client may see while a sweep runs is the same:

* the entries already visited have moved and the others not yet; a requeued job can be
  fetched before the MUTATE is answered;
* the sweep visits the entries the set held when it began: jobs added later are left
  alone, jobs that left the set meanwhile (a due retry enqueued, another MUTATE) are
  skipped;
* each job moves in one piece, and each slice's changes are stored (journaled) together,
  so a crash mid-sweep leaves a prefix of the sweep done and the rest untouched, never a
  job in two places or in none. Sending the same MUTATE again finishes the work.

``clear`` (and ``discard`` with no filter) empties the set at once, as one stored change.

Server extensions hear of every job with ``custom`` a MUTATE kills, discards or requeues
(:meth:`~werk.server._extension.Extension.removed`), in the turn that moves it: a slice's
record changes are stored with its job changes. A kill within the dead set moves nothing
anywhere new and is not reported. A ``clear`` searches each payload of the set for
``custom`` in the same turn (one substring search a job), only when some extension listens.

Example::

    >>> from werk.server._clock import ManualClock
    >>> from werk.server._manager import Manager
    >>> from werk.server._storage import MemoryStorage
    >>> m = Manager(MemoryStorage(), ManualClock(0))
    >>> m.push_bytes(b'{"jid":"jid-00000001","jobtype":"S1","args":[],"at":"2099-01-01T00:00:00Z"}')
    >>> op = b'{"cmd":"kill","target":"scheduled","filter":{"regexp":"*S?*"}}'
    >>> sweep = Sweep(m, MutateCommand.decode(m.codec, op))
    >>> while not sweep.step():
    ...     pass
    >>> len(m.scheduled), len(m.dead), sweep.changed
    (0, 1, 1)
"""

from __future__ import annotations

from collections.abc import Callable

from werk._job import QUEUE_NAME_RE
from werk.server._arguments import MutateCommand
from werk.server._extension import DELETED, KILLED, REQUEUED
from werk.server._glob import MAX_PATTERN, Glob
from werk.server._gojson import GoJSONError, go_quote
from werk.server._manager import BAD_QUEUE, CUSTOM_MARK, DEAD_TTL, Manager
from werk.server._sets import SetScan, SortedSet
from werk.server._storage import DEAD, RETRIES, SCHEDULED

__all__ = ["SLICE_WORK", "MutateError", "Sweep"]

SLICE_WORK = 500
"""Work per :meth:`Sweep.step`: one unit per entry visited and one per KiB of payload
matched; a slice of 300-byte jobs takes one or two milliseconds."""

_TARGETS = {"retries": RETRIES, "dead": DEAD, "scheduled": SCHEDULED}
_NO_QUEUE = ("", 0, False)


class MutateError(Exception):
    """A MUTATE the server refuses; ``str(exc)`` is the reply text."""


def _quoted(key: str, value: str) -> bytes:
    # The real server looks for fmt.Sprintf(`"jid":%q`, jid) in the payload.
    return f'"{key}":{go_quote(value)}'.encode("utf-8", "surrogatepass")


def _matcher(op: MutateCommand) -> Callable[[bytes], bool]:
    if not op.has_filter:
        return lambda payload: True
    if op.jids:
        needles = [_quoted("jid", jid) for jid in op.jids]
        return lambda payload: any(payload.find(n) > 0 for n in needles)
    if op.regexp:
        pattern = op.regexp.encode("utf-8", "surrogatepass")
        if len(pattern) > MAX_PATTERN:
            raise MutateError(f"regexp filter longer than {MAX_PATTERN} bytes")
        glob = Glob(pattern).match
        if op.jobtype:
            needle = _quoted("jobtype", op.jobtype)
            return lambda payload: glob(payload) and payload.find(needle) > 0
        return glob
    if op.jobtype:
        needle = _quoted("jobtype", op.jobtype)
        return lambda payload: payload.find(needle) > 0
    return lambda payload: True


class Sweep:
    """One MUTATE, applied a slice at a time (see the module docstring).

    The constructor checks the operation (:class:`MutateError` carries the reply text)
    and does all of ``clear``; :meth:`step` does the rest.
    """

    __slots__ = ("_match", "_scan", "changed", "cmd", "kind", "m", "target", "visited")

    def __init__(self, m: Manager, op: MutateCommand) -> None:
        if op.cmd not in ("clear", "kill", "discard", "requeue"):
            raise MutateError("unknown mutate operation")
        kind = _TARGETS.get(op.target)
        if kind is None:
            raise MutateError("invalid target for mutation command")
        self.m = m
        self.cmd = op.cmd
        self.target = op.target
        self.kind = kind
        self.visited = 0
        self.changed = 0
        self._scan: SetScan | None = None
        target = self._set()
        if op.cmd == "clear" or (op.cmd == "discard" and not op.has_filter):
            # One stored change for the whole set, not one per job.
            self.changed = len(target)
            m.storage.clear_kind(kind)
            old = target.clear()
            if m.follows_removals:
                mark = CUSTOM_MARK  # searched here: most jobs of a big set have no custom
                hooked = [(e.jid, e.payload) for e in old.values() if mark in e.payload]
                m.jobs_removed(hooked, DELETED)
            m.release(old)
            return
        self._match = _matcher(op)
        self._scan = target.scan()

    def _set(self) -> SortedSet:
        # Looked up on every step: a reload after a failed commit replaces the sets (ids
        # stay the same, so the scan carries on over the reloaded entries).
        m = self.m
        return m.retries if self.kind == RETRIES else m.dead if self.kind == DEAD else m.scheduled

    @property
    def done(self) -> bool:
        """True once every entry has been visited."""
        return self._scan is None or not len(self._scan)

    def step(self, work: int = SLICE_WORK) -> bool:
        """Visit entries until about ``work`` units are spent; True when the sweep is done.

        A requeue of a job whose payload or queue name is unusable stops the sweep with
        :class:`MutateError` (the jobs moved before it stay moved, as on the real server).
        """
        scan = self._scan
        if scan is None:
            return True
        target = self._set()
        entries = target.entries
        match, cmd, m = self._match, self.cmd, self.m
        storage = m.storage
        # Reported before the job reaches its new place: a requeued job may be handed to
        # a blocked FETCH at once, and the extensions must see the requeue before that.
        removed = m.jobs_removed if m.follows_removals else None
        how = KILLED if cmd == "kill" else REQUEUED if cmd == "requeue" else DELETED
        if how == KILLED and self.kind == DEAD:
            removed = None  # dead already: nothing changes for the job
        spent = 0
        next_id = scan.next_id
        while spent < work:
            eid = next_id()
            if eid < 0:
                break
            entry = entries.get(eid)
            if entry is None:
                continue  # left the set since the sweep began
            spent += 1 + (len(entry.payload) >> 10)
            self.visited += 1
            if not match(entry.payload):
                continue
            queue, reserve_for, custom = _NO_QUEUE
            if cmd == "requeue":
                queue, reserve_for, custom = self._requeue_check(entry.payload)
            target.remove(eid)
            storage.entry_remove(eid)
            self.changed += 1
            if removed is not None:
                removed(((entry.jid, entry.payload),), how)
            if cmd == "kill":
                m.add_to_set(m.dead, DEAD, m.clock.now() + DEAD_TTL, entry.jid, entry.payload)
            elif cmd == "requeue":
                # The stored payload goes back unchanged: enqueued_at is not refreshed.
                m.append_to_queue(queue, entry.jid, reserve_for, entry.payload, custom)
        if not len(scan):
            self._scan = None
            return True
        return False

    def _requeue_check(self, payload: bytes) -> tuple[str, int, bool]:
        m = self.m
        try:
            job = m.codec.loads(payload)
            queue = job.get("queue") or ""
            reserve_for = int(job.get("reserve_for") or 0)
            custom = bool(job.get("custom"))
        except (GoJSONError, AttributeError, TypeError, ValueError) as exc:
            self._scan = None
            raise MutateError(f"cannot unmarshal job payload: {exc}") from None
        if queue not in m.queues and not QUEUE_NAME_RE.match(queue):
            self._scan = None
            raise MutateError(BAD_QUEUE)
        return queue, reserve_for, custom

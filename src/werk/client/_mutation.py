"""MUTATE, typed: what to do (kill, discard, requeue, clear) to which set, and which jobs.

Filters (the server's rules):

* ``jids(...)``: exactly these jobs.
* ``jobtype(name)``: every job of that type.
* ``matching(glob)``: a Redis glob (``*``, ``?``, ``[...]``) matched against the whole job
  JSON, so ``*ann@example.com*`` finds jobs whose args mention it. It is not a regular
  expression. The MUTATE line may contain no space, so neither may a glob: use ``?``.
* ``matching`` and ``jobtype`` combine (both must match).
* No filter: the whole set. ``clear`` always empties the whole set and takes no filter.

``jids`` cannot be combined with the others: Faktory 1.9.0-1.9.1 gave ``jobtype`` precedence
over ``jids`` (touching every job of the type), 1.9.2+ the reverse, so werk refuses rather
than act differently on different servers.
"""

from __future__ import annotations

import enum
from typing import Any

from werk._errors import LocalProtocolError

__all__ = ["Mutation", "MutationAction", "Target"]


class Target(str, enum.Enum):
    """The sorted sets MUTATE works on (queues and the working set are not targets)."""

    RETRIES = "retries"
    SCHEDULED = "scheduled"
    DEAD = "dead"


class MutationAction(str, enum.Enum):
    """What MUTATE does to each matching job (the ``cmd`` of its JSON)."""

    KILL = "kill"  # move to the dead set
    DISCARD = "discard"  # delete
    REQUEUE = "requeue"  # push back onto its queue
    CLEAR = "clear"  # delete the entire set


def _word(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise LocalProtocolError(f"{what} must be a non-empty string")
    if " " in value:
        raise LocalProtocolError(
            f"{what} cannot contain a space (the server splits MUTATE on spaces): {value!r}"
        )
    return value


class Mutation:
    """One MUTATE command, built with :meth:`kill`, :meth:`discard`, :meth:`requeue`, :meth:`clear`.

    Instances are immutable: each filter method returns a new one.

    Example::

        client.mutate(Mutation.kill(Target.RETRIES).jobtype("Resize"))
        client.mutate(Mutation.requeue(Target.DEAD).jids("a1b2c3d4e5f6", "0f9e8d7c6b5a"))
        client.mutate(Mutation.discard(Target.SCHEDULED).matching("*ann@example.com*"))
        client.mutate(Mutation.clear(Target.DEAD))

        >>> Mutation.kill(Target.RETRIES).jids("jid-retry-A1").to_dict()
        {'cmd': 'kill', 'target': 'retries', 'filter': {'jids': ['jid-retry-A1']}}
    """

    __slots__ = ("_jids", "_jobtype", "_pattern", "action", "target")

    def __init__(
        self,
        action: MutationAction | str,
        target: Target | str,
        *,
        jids: tuple[str, ...] = (),
        jobtype: str | None = None,
        pattern: str | None = None,
    ) -> None:
        try:
            self.action = MutationAction(action)
        except ValueError:
            raise LocalProtocolError(f"unknown mutate action: {action!r}") from None
        try:
            self.target = Target(target)
        except ValueError:
            raise LocalProtocolError(
                f"MUTATE target must be retries, scheduled or dead, got {target!r}"
            ) from None
        self._jids = tuple(_word(j, "jid") for j in jids)
        self._jobtype = None if jobtype is None else _word(jobtype, "jobtype")
        self._pattern = None if pattern is None else _word(pattern, "glob")
        if self.action is MutationAction.CLEAR and (self._jids or self._jobtype or self._pattern):
            raise LocalProtocolError("clear empties the whole set and takes no filter")
        if self._jids and (self._jobtype or self._pattern):
            raise LocalProtocolError(
                "jids cannot be combined with jobtype or matching (servers disagree on which wins)"
            )

    @classmethod
    def kill(cls, target: Target | str) -> Mutation:
        """Move matching jobs to the dead set, where they stay (180 days on Faktory) until
        requeued or discarded."""
        return cls(MutationAction.KILL, target)

    @classmethod
    def discard(cls, target: Target | str) -> Mutation:
        """Delete matching jobs (without a filter: every job in the set)."""
        return cls(MutationAction.DISCARD, target)

    @classmethod
    def requeue(cls, target: Target | str) -> Mutation:
        """Push matching jobs back onto their queues, unchanged: a retry or a scheduled job
        runs now instead of at its time; a dead job gets another chance."""
        return cls(MutationAction.REQUEUE, target)

    @classmethod
    def clear(cls, target: Target | str) -> Mutation:
        """Delete every job in the set (no filter applies)."""
        return cls(MutationAction.CLEAR, target)

    def _with(self, **changes: Any) -> Mutation:
        fields: dict[str, Any] = {
            "jids": self._jids,
            "jobtype": self._jobtype,
            "pattern": self._pattern,
        }
        fields.update(changes)
        return Mutation(self.action, self.target, **fields)

    def jids(self, *jids: str) -> Mutation:
        """Only these jobs."""
        if not jids:
            raise LocalProtocolError("jids() needs at least one jid")
        return self._with(jids=self._jids + jids)

    def jobtype(self, jobtype: str) -> Mutation:
        """Only jobs of this type."""
        return self._with(jobtype=jobtype)

    def matching(self, glob: str) -> Mutation:
        """Only jobs whose JSON matches this Redis glob (``*``, ``?``, ``[...]``; no spaces)."""
        return self._with(pattern=glob)

    def to_dict(self) -> dict[str, Any]:
        """The MUTATE JSON object (key order as the reference client writes it)."""
        op: dict[str, Any] = {"cmd": self.action.value, "target": self.target.value}
        flt: dict[str, Any] = {}
        if self._jids:
            flt["jids"] = list(self._jids)
        if self._pattern is not None:
            flt["regexp"] = self._pattern
        if self._jobtype is not None:
            flt["jobtype"] = self._jobtype
        if flt:
            op["filter"] = flt
        return op

    def __repr__(self) -> str:
        return f"Mutation({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mutation) and other.to_dict() == self.to_dict()

    __hash__ = None  # type: ignore[assignment]

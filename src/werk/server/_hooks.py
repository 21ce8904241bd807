"""The extensions of one manager, grouped by the hooks they override: the manager calls
:class:`Extensions`, which calls each extension that has something to do (the order and
the rules are in :mod:`werk.server._extension`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from werk._errors import ConfigurationError, FaktoryError
from werk.server._confd import Config
from werk.server._extension import ACK, CommandHandler, Extension, Host, Records
from werk.server._payload import Payload
from werk.server._sets import Reservation
from werk.server._waiters import Waiter

__all__ = ["Extensions", "read_configs"]

log = logging.getLogger("werk.server")

INTERNAL_ERROR = "internal error"

_PROTOCOL_VERBS = frozenset(
    b"HELLO PUSH PUSHB FETCH ACK FAIL BEAT INFO FLUSH END MUTATE QUEUE".split()
)


def _overrides(ext: Extension, name: str) -> bool:
    return getattr(type(ext), name) is not getattr(Extension, name)


class Extensions:
    """The extensions of one manager, each hook's callers worked out once; the manager
    calls these methods only for hooked jobs and reservations."""

    def __init__(self, extensions: Sequence[Extension], host: Host) -> None:
        self.all = tuple(extensions)
        by_hook: dict[str, tuple[Extension, ...]] = {
            name: tuple(e for e in self.all if _overrides(e, name))
            for name in (
                "check_push",
                "pushed",
                "fetch",
                "discarded",
                "reserved",
                "acked",
                "failed",
                "released",
                "removed",
                "tick",
                "flushed",
                "worker_gone",
            )
        }
        self._check_push = by_hook["check_push"]
        self._pushed = by_hook["pushed"]
        self._fetch = by_hook["fetch"]
        self._discarded = by_hook["discarded"]
        self._reserved = by_hook["reserved"]
        self._acked = by_hook["acked"]
        self._failed = by_hook["failed"]
        self._released = by_hook["released"]
        self._removed = by_hook["removed"]
        self._tick = by_hook["tick"]
        self._flushed = by_hook["flushed"]
        self._worker_gone = by_hook["worker_gone"]
        # Whether a job with ``custom`` is worth decoding for these hooks.
        self.inspect_fetch = bool(self._fetch)
        self.job_at_reserve = any(e.needs_job for e in self._reserved)
        self.job_at_ack = any(e.needs_job for e in self._acked)
        # Whether removals are worth looking at (a cleared set is then scanned for custom).
        self.follows_removals = bool(self._removed)
        self.guards: dict[str, list[Extension]] = {}  # queue -> extensions asked first
        self._ticking: list[Extension] = []  # said they had more to do
        for ext in self.all:
            ext.attach(host)
        self.commands: dict[bytes, CommandHandler] = {}
        for ext in self.all:
            for verb, handler in ext.commands().items():
                if verb in _PROTOCOL_VERBS or verb in self.commands:
                    raise ConfigurationError(f"{_name(ext)} cannot answer {verb.decode()}: taken")
                self.commands[verb] = handler

    # -- configuration ---------------------------------------------------------------

    def configure(self, config: Config) -> None:
        """Every extension reads its configuration; only if all accept do they switch.
        Raises :class:`~werk.ConfigurationError` (nothing changed) otherwise."""
        for ext, read in read_configs(self.all, config):
            ext.use_config(read)

    def load(self, records: Records) -> None:
        """Hand the stored records to every extension."""
        for ext in self.all:
            ext.load(records)

    # -- the hooks, in the order of the module docstring -------------------------------
    # An extension that raises is logged and passed over, as if its hook had done
    # nothing: the manager's change around the call is carried out whole, so no job is
    # lost to a bug in an extension.

    def check_push(self, job: Payload) -> str | None:
        """The first refusal, or None when every extension accepts ``job``."""
        for ext in self._check_push:
            try:
                error = ext.check_push(job)
            except Exception:
                log.exception("%s.check_push failed on %s", _name(ext), job.get("jid"))
                return INTERNAL_ERROR  # refused: nothing is stored
            if error is not None:
                return error
        return None

    def pushed(self, job: Payload) -> None:
        """``job`` was accepted."""
        for ext in self._pushed:
            try:
                ext.pushed(job)
            except Exception:
                log.exception("%s.pushed failed on %s", _name(ext), job.get("jid"))

    def admit(self, guards: list[Extension], queue: str, wid: str) -> bool:
        """Whether every extension guarding ``queue`` lets ``wid`` take a job now."""
        for ext in guards:
            try:
                if not ext.admit(queue, wid):
                    return False
            except Exception:  # a broken guard must not stop the queue
                log.exception("%s.admit failed on %s", _name(ext), queue)
        return True

    def admits(self, queue: str) -> Callable[[Waiter], bool] | None:
        """For a blocked FETCH being handed a job of ``queue``: who may take it (None when
        the queue is not guarded: anyone)."""
        guards = self.guards.get(queue)
        if not guards:
            return None
        return lambda waiter: self.admit(guards, queue, waiter.wid)

    def fetch(self, job: Payload, queue: str, wid: str) -> str | None:
        """The first reason to discard the popped ``job``, or None to hand it out."""
        for ext in self._fetch:
            try:
                reason = ext.fetch(job, queue, wid)
            except Exception:
                log.exception("%s.fetch failed on %s", _name(ext), job.get("jid"))
                continue
            if reason is not None:
                log.info("JID %s: %s", job.get("jid"), reason)
                for other in self._discarded:
                    try:
                        other.discarded(job, reason)
                    except Exception:
                        log.exception("%s.discarded failed", _name(other))
                return reason
        return None

    def reserved(self, res: Reservation, job: Payload | None) -> None:
        """A reservation was made."""
        for ext in self._reserved:
            try:
                ext.reserved(res, job)
            except Exception:
                log.exception("%s.reserved failed on %s", _name(ext), res.jid)

    def acked(self, res: Reservation, job: Payload | None) -> None:
        """ACK, then the end of the reservation."""
        for ext in self._acked:
            try:
                ext.acked(res, job)
            except Exception:
                log.exception("%s.acked failed on %s", _name(ext), res.jid)
        self.released(res, ACK)

    def failed(self, res: Reservation, job: Payload, outcome: str) -> None:
        """FAIL or expiry, before its outcome is carried out."""
        for ext in self._failed:
            try:
                ext.failed(res, job, outcome)
            except Exception:
                log.exception("%s.failed failed on %s", _name(ext), res.jid)

    def released(self, res: Reservation, reason: str) -> None:
        """The end of a reservation."""
        for ext in self._released:
            try:
                ext.released(res, reason)
            except Exception:
                log.exception("%s.released failed on %s", _name(ext), res.jid)

    def removed(self, jobs: Sequence[tuple[str, bytes]], how: str) -> None:
        """Jobs with ``custom`` (jid, payload) left their queue or set other than by FETCH,
        ACK or FAIL; a whole queue's at once when it is removed, one extension at a time."""
        for ext in self._removed:
            hook = ext.removed
            for jid, payload in jobs:
                try:
                    hook(jid, payload, how)
                except Exception:
                    log.exception("%s.removed failed on %s", _name(ext), jid)

    def tick(self, now: float) -> bool:
        """Every extension's periodic work; True while some have more to do."""
        self._ticking = [ext for ext in self._tick if self._tick_one(ext, now)]
        return bool(self._ticking)

    def resume_tick(self, now: float) -> bool:
        """Another slice for the extensions that had more to do."""
        self._ticking = [ext for ext in self._ticking if self._tick_one(ext, now)]
        return bool(self._ticking)

    @staticmethod
    def _tick_one(ext: Extension, now: float) -> bool:
        try:
            return ext.tick(now)
        except Exception:
            log.exception("%s.tick failed", _name(ext))
            return False

    def flushed(self) -> None:
        """After FLUSH."""
        for ext in self._flushed:
            try:
                ext.flushed()
            except Exception:
                log.exception("%s.flushed failed", _name(ext))

    def worker_gone(self, wid: str, reaped: bool) -> None:
        """A worker left."""
        for ext in self._worker_gone:
            try:
                ext.worker_gone(wid, reaped)
            except Exception:
                log.exception("%s.worker_gone failed on %s", _name(ext), wid)


def read_configs(extensions: Sequence[Extension], config: Config) -> list[tuple[Extension, object]]:
    """Check ``config``'s top-level tables against what werk and ``extensions`` read, then
    have each extension read its part; a :class:`~werk.ConfigurationError` for the first
    refusal (what ``werk cron`` runs to check files as the server would)."""
    config.check_tables(name for ext in extensions for name in ext.config_tables)
    read: list[tuple[Extension, object]] = []
    for ext in extensions:
        try:
            read.append((ext, ext.read_config(config)))
        except FaktoryError:
            raise
        except Exception as exc:  # a bug in the reader: refuse, keep the old one
            message = f"{_name(ext)} cannot read its configuration: {exc!r}"
            raise ConfigurationError(message) from exc
    return read


def _name(ext: Extension) -> str:
    return type(ext).__name__

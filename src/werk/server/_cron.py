"""Cron: the ``[[cron]]`` entries of the configuration push a job at each tick of their
schedule (Faktory Enterprise's periodic jobs; docs/enterprise.md section 8).

werk's choices, in protocol terms:

* A tick is a whole minute in UTC matching the schedule; the job is pushed through the
  whole PUSH pipeline with a fresh 16-character jid as soon as the server's clock reaches
  the tick. A push that is refused (a unique lock held, say) is logged, counted and not
  retried; the tick counts as fired.
* Each entry's last fired tick is a record (space ``cron``), stored in the same commit as
  the pushed job: after ``kill -9`` either both are there or neither. When the clock has
  passed several ticks since the last one fired (the server was down, or the clock
  jumped), only the latest of them fires; older missed ticks are skipped.
* An entry is identified by a hash of its schedule and ``job`` table (and its position
  among identical entries); editing an entry makes it a new one. An entry seen for the
  first time starts at the next tick, with no catch-up. A reload swaps the entries at
  once; unchanged entries keep their last tick and history; records of entries that are
  gone are deleted.
* ``custom.expires_in`` of an entry counts from the tick, not from the push (a late
  catch-up tick can expire by itself): the job is pushed with ``expires_at``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from werk._job import QUEUE_NAME_RE
from werk._protocol.timefmt import epoch_to_string
from werk.server._confd import Config, Section
from werk.server._expiring import BAD_EXPIRES_IN, bad_expires_at
from werk.server._extension import Extension, MetricSample, Records
from werk.server._payload import Payload
from werk.server._schedule import Schedule, ScheduleError
from werk.server._unique import BAD_UNIQUE_FOR, BAD_UNIQUE_UNTIL, unique_for

__all__ = ["HISTORY", "SPACE", "Cron", "CronEntry", "read_entries"]

log = logging.getLogger("werk.server")

SPACE = "cron"
HISTORY = 25  # pushed jobs kept per entry
ENTRY_KEYS = ("schedule", "job")
JOB_KEYS = ("type", "queue", "args", "retry", "reserve_for", "backtrace", "custom")
MAX_RESERVE = 86400
_INT64 = 2**63


@dataclass(frozen=True)
class CronEntry:
    """One checked ``[[cron]]`` entry."""

    id: str
    schedule: Schedule
    job: Mapping[str, Any]  # the checked [cron.job] table
    origin: str  # where it was written ("conf.d/cron.toml:3")

    @property
    def jobtype(self) -> str:
        """The job's type."""
        return str(self.job["type"])

    @property
    def queue(self) -> str:
        """The job's queue."""
        return str(self.job.get("queue", "default"))

    def make_job(self, tick: float) -> Payload:
        """A new job for the tick at ``tick``: a fresh jid and fresh copies of the values."""
        job: Payload = {
            "jid": secrets.token_urlsafe(12),
            "jobtype": self.job["type"],
            "queue": self.queue,
            "args": copy.deepcopy(self.job.get("args", [])),
        }
        for key in ("retry", "reserve_for", "backtrace"):
            if key in self.job:
                job[key] = self.job[key]
        if self.job.get("custom"):
            custom = copy.deepcopy(dict(self.job["custom"]))
            expires_in = custom.get("expires_in")
            if (
                "expires_at" not in custom
                and isinstance(expires_in, int | float)
                and not isinstance(expires_in, bool)
                and expires_in > 0
            ):
                del custom["expires_in"]
                custom["expires_at"] = epoch_to_string(tick + expires_in)
            job["custom"] = custom
        return job


def read_entries(config: Config) -> tuple[CronEntry, ...]:
    """Check every ``[[cron]]`` entry of ``config``; a :class:`~werk.ConfigurationError`
    naming the file and line of the first bad one."""
    entries = []
    seen: dict[str, int] = {}
    for section in config.cron:
        schedule, job = _check_entry(section)
        digest = hashlib.sha256(
            json.dumps([schedule.text, job], sort_keys=True).encode()
        ).hexdigest()[:16]
        n = seen[digest] = seen.get(digest, -1) + 1
        entry_id = digest if n == 0 else f"{digest}-{n}"
        entries.append(CronEntry(entry_id, schedule, job, section.origin()))
    return tuple(entries)


def _check_entry(entry: Section) -> tuple[Schedule, dict[str, Any]]:
    entry.check_keys(ENTRY_KEYS, required=ENTRY_KEYS)
    text = entry.string("schedule")
    try:
        schedule = Schedule.parse(text)
    except ScheduleError as exc:
        raise entry.error(f"cron.schedule {text!r}: {exc}", "schedule") from None
    job = entry.table("job")
    assert job is not None  # required
    job.check_keys(JOB_KEYS, required=("type",))
    if not job.string("type"):
        raise job.error("cron.job.type must not be empty", "type")
    queue = job.string("queue", "default")
    if not QUEUE_NAME_RE.match(queue):
        raise job.error(f"cron.job.queue {queue!r} is not a queue name ([a-zA-Z0-9._-]+)", "queue")
    job.array("args", [])
    for key in ("retry", "backtrace"):
        value = job.integer(key, None)
        if value is not None and not -_INT64 <= value < _INT64:
            raise job.error(f"cron.job.{key} is too large", key)
    reserve_for = job.integer("reserve_for", None, minimum=0)
    if reserve_for is not None and reserve_for > MAX_RESERVE:
        raise job.error(
            f"cron.job.reserve_for must be at most {MAX_RESERVE} (a day)", "reserve_for"
        )
    custom = job.table("custom")
    if custom is not None:
        _check_custom(custom)
    for key in ("args", "custom"):
        try:
            json.dumps(job.get(key), allow_nan=False)
        except (TypeError, ValueError):
            raise job.error(f"cron.job.{key} holds a value JSON cannot carry", key) from None
    return schedule, dict(job)


def _check_custom(custom: Section) -> None:
    # The options the PUSH pipeline would refuse at every tick are refused here, with the
    # file and line, so that a typo never turns into a silent run of skipped ticks.
    data = dict(custom)
    until = data.get("unique_until")
    if until is not None and until not in ("success", "start"):
        raise custom.error(f"cron.job.custom: {BAD_UNIQUE_UNTIL}", "unique_until")
    if isinstance(unique_for(data), str):
        raise custom.error(f"cron.job.custom: {BAD_UNIQUE_FOR}", "unique_for")
    if "expires_at" in data:
        error = bad_expires_at(data["expires_at"])
        if error is not None:
            raise custom.error(f"cron.job.custom: {error}", "expires_at")
    expires_in = data.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not expires_in > 0
        or not math.isfinite(expires_in)
    ):
        raise custom.error(f"cron.job.custom: {BAD_EXPIRES_IN}", "expires_in")
    for key in ("bid", "_bid", "_cb"):
        if key in data:  # a batch's members and callbacks are pushed by their batch
            raise custom.error(f"cron.job.custom.{key} is not allowed in a cron entry", key)


@dataclass
class EntryState:
    """What the cron extension knows of an entry at run time."""

    last: float | None = None  # the last fired tick (stored)
    floor: float = 0.0  # ticks at or before this one do not fire
    next_due: float = 0.0  # when to look again
    history: list[tuple[float, str]] = field(default_factory=list)  # (tick, jid), newest first

    def record(self) -> bytes:
        data = {"last": self.last, "floor": self.floor, "history": self.history}
        return json.dumps(data).encode()


class Cron(Extension):
    """The cron extension (see the module docstring)."""

    def __init__(self) -> None:
        self.entries: tuple[CronEntry, ...] = ()
        self.state: dict[str, EntryState] = {}
        self._stored: dict[str, EntryState] = {}  # from load(), for entries not yet seen
        self.fired = 0  # jobs pushed (ticks and enqueue now)
        self.skipped = 0  # ticks whose push was refused
        self._configured = False  # load() at boot comes before the configuration

    # -- life cycle ------------------------------------------------------------------

    def load(self, records: Records) -> None:
        self._stored = {}
        for key, value in records.get(SPACE, {}).items():
            try:
                data = json.loads(value)
                history = [(float(t), str(j)) for t, j in data.get("history", [])]
                last = data.get("last")
                self._stored[key] = EntryState(
                    last=None if last is None else float(last),
                    floor=float(data.get("floor") or last or 0.0),
                    history=history,
                )
            except (ValueError, TypeError, AttributeError):
                log.warning("cron: unreadable record for entry %s dropped", key)
        if self._configured:  # after a failed commit: back to what was stored
            self.state = {}
            self._switch(self.entries)

    def read_config(self, config: Config) -> object:
        return read_entries(config)

    def use_config(self, config: object) -> None:
        assert isinstance(config, tuple)
        self._switch(config)

    def _switch(self, entries: Sequence[CronEntry]) -> None:
        now = self.host.clock.now()
        state: dict[str, EntryState] = {}
        for entry in entries:
            old = self.state.get(entry.id) or self._stored.pop(entry.id, None)
            if old is None:  # a new entry: from the next tick on, stored from now on
                old = EntryState(floor=entry.schedule.latest_at_or_before(now))
                self.host.put_record(SPACE, entry.id, old.record())
            old.next_due = now  # look at the next tick whether one is due
            state[entry.id] = old
        for gone in (set(self.state) | set(self._stored)) - set(state):
            self.host.delete_record(SPACE, gone)
        self._stored = {}
        self.entries = tuple(entries)
        self.state = state
        self._configured = True

    # -- ticks -----------------------------------------------------------------------

    def metric_samples(self) -> list[MetricSample]:
        return [
            MetricSample("werk_server_cron_entries", len(self.entries), help="Cron entries."),
            MetricSample(
                "werk_server_cron_jobs",
                self.fired,
                kind="counter",
                help="Jobs pushed by cron (ticks and enqueue now) since the server started.",
            ),
            MetricSample(
                "werk_server_cron_refused",
                self.skipped,
                kind="counter",
                help="Cron ticks whose push was refused since the server started.",
            ),
        ]

    def tick(self, now: float) -> bool:
        for entry in self.entries:
            st = self.state[entry.id]
            if now < st.next_due:
                continue
            slot = entry.schedule.latest_at_or_before(now)
            if slot > st.floor:
                self._fire(entry, st, slot)
                st.last = st.floor = slot
                self.host.put_record(SPACE, entry.id, st.record())
            st.next_due = entry.schedule.next_after(now)
        return False

    def _fire(self, entry: CronEntry, st: EntryState, tick: float) -> str | None:
        job = entry.make_job(tick)
        error = self.host.push(job)
        if error is not None:
            self.skipped += 1
            log.warning(
                "cron %s (%s, %s): job not pushed: %s",
                entry.schedule.text,
                entry.jobtype,
                entry.origin,
                error,
            )
            return None
        self.fired += 1
        st.history.insert(0, (tick, job["jid"]))
        del st.history[HISTORY:]
        return str(job["jid"])

    def enqueue_now(self, entry_id: str) -> str:
        """Push one job of the entry now (the web UI's "enqueue now"); its jid. The last
        fired tick does not change. KeyError for an unknown entry, ValueError with the
        server's text when the push is refused."""
        entry = {e.id: e for e in self.entries}[entry_id]
        st = self.state[entry_id]
        job = entry.make_job(self.host.clock.now())
        error = self.host.push(job)
        if error is not None:
            raise ValueError(error)
        self.fired += 1
        st.history.insert(0, (self.host.clock.now(), job["jid"]))
        del st.history[HISTORY:]
        self.host.put_record(SPACE, entry.id, st.record())
        return str(job["jid"])

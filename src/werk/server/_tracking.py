"""Faktory Enterprise's job tracking in werk's server: ``TRACK SET`` and ``TRACK GET``
(docs/enterprise.md section 4, werk's choices in section 13).

A job pushed with ``custom.track`` set (any number but 0, or true) gets a record whose
state follows the job: enqueued at push (and when MUTATE requeues it), working at each
FETCH, success at ACK, failed at a FAIL (or reservation expiry) that retries or discards
it, dead when it goes to the dead set (by FAIL or MUTATE kill). A job erased from the
server (MUTATE discard or clear, QUEUE REMOVE, the web UI's deletes, expired at FETCH)
loses its record at once: it reads ``unknown``. TRACK SET stores a percentage and a
description for any jid (an untracked one's state stays ``unknown``) and may extend the
job's reservation. Records are stored in space ``track`` (key: the jid), in the same
commit as the job change that moved them. Records of jobs still in the system never
expire; a finished job's, and one made by SET alone, expire 30 minutes after their last
update (the periodic task).

Untracked jobs cost nothing here beyond a dict lookup in the hooks the manager already
calls for jobs with ``custom``.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from werk._protocol.resp import OK, encode_bulk, encode_error
from werk.server._batch import struct_json
from werk.server._extension import (
    DEAD,
    DELETED,
    DISCARD,
    KILLED,
    PUT_BACK,
    REQUEUED,
    CommandClient,
    CommandHandler,
    Extension,
    MetricSample,
    Records,
)
from werk.server._gojson import GoDecoder, GoJSONError, go_quote
from werk.server._gotime import parse_rfc3339
from werk.server._payload import STRING, Payload, check_field, json_kind
from werk.server._sets import Reservation

__all__ = ["RETENTION", "TrackInfo", "Tracking"]

SPACE = "track"
RETENTION = 30 * 60.0  # a finished job's record, from its last update
TICK_SLICE = 1000  # records expired per tick() call
UNKNOWN, ENQUEUED, WORKING = "unknown", "enqueued", "working"
SUCCESS, FAILED, DEAD_STATE = "success", "failed", "dead"


@dataclass(frozen=True)
class TrackInfo:
    """A job's progress as the web UI shows it (``Tracking.track_of``)."""

    jid: str
    state: str  # enqueued, working, success, failed, dead, unknown (untracked: SET only)
    percent: int  # 0 when none was given
    desc: str
    updated_at: str  # RFC 3339, the server's form


class _Track:
    __slots__ = ("desc", "final", "percent", "state", "tracked", "updated", "updated_at")

    def __init__(self, tracked: bool) -> None:
        self.tracked = tracked  # pushed with custom.track (else: made by SET, "unknown")
        self.state = ENQUEUED if tracked else UNKNOWN
        self.final = False  # expires RETENTION after ``updated``
        self.percent = 0
        self.desc = ""
        self.updated = 0.0
        self.updated_at = ""

    def record(self) -> bytes:
        return json.dumps(
            [
                self.tracked,
                self.state,
                self.final,
                self.percent,
                self.desc,
                self.updated,
                self.updated_at,
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_record(cls, value: bytes) -> _Track:
        tracked, state, final, percent, desc, updated, updated_at = json.loads(value)
        t = cls(tracked)
        t.state, t.final, t.percent, t.desc = state, final, percent, desc
        t.updated, t.updated_at = updated, updated_at
        return t


def wants_tracking(custom: Mapping[str, Any]) -> bool:
    """``custom.track``: any number but 0, or true (clients send 1)."""
    value = custom.get("track")
    if value is True:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value != 0


class Tracking(Extension):
    """The ``TRACK`` command and tracked jobs' states (see the module docstring).

    Read API for the web UI (on the server's loop; ``_features.tracking_of(manager)``
    finds the instance): :meth:`track_of` for one jid, :meth:`tracks_of` for many (the
    Busy page's jobs).
    """

    needs_job = False  # the hooks go by the jid: no payload is decoded for them

    def __init__(self) -> None:
        self.tracks: dict[str, _Track] = {}
        self._due: list[tuple[float, str]] = []  # (expiry, jid) of final records, lazy
        self._decode = GoDecoder().loads

    # -- read API (web UI) -----------------------------------------------------------

    def track_of(self, jid: str) -> TrackInfo | None:
        """The record of ``jid``, or None (``TRACK GET`` then answers ``unknown``)."""
        t = self.tracks.get(jid)
        if t is None:
            return None
        return TrackInfo(jid, t.state, t.percent, t.desc, t.updated_at)

    def tracks_of(self, jids: list[str]) -> dict[str, TrackInfo]:
        """The records of those jids that have one."""
        found = {jid: self.track_of(jid) for jid in jids if jid in self.tracks}
        return {jid: info for jid, info in found.items() if info is not None}

    # -- life cycle ------------------------------------------------------------------

    def load(self, records: Records) -> None:
        self.tracks = {
            jid: _Track.from_record(value) for jid, value in records.get(SPACE, {}).items()
        }
        self._due = [(t.updated + RETENTION, jid) for jid, t in self.tracks.items() if t.final]
        heapq.heapify(self._due)

    def metric_samples(self) -> list[MetricSample]:
        return [
            MetricSample(
                "werk_server_tracked_jobs", len(self.tracks), help="Job tracking records held."
            )
        ]

    def flushed(self) -> None:
        self.tracks.clear()
        self._due.clear()
        self.host.clear_records(SPACE)

    def commands(self) -> Mapping[bytes, CommandHandler]:
        return {b"TRACK": self._command}

    def tick(self, now: float) -> bool:
        due = self._due
        for _ in range(TICK_SLICE):
            if not due or due[0][0] > now:
                return False
            _, jid = heapq.heappop(due)
            t = self.tracks.get(jid)
            if t is None or not t.final:
                continue  # gone, or its job is back in the system: no expiry
            when = t.updated + RETENTION
            if when > now:
                heapq.heappush(due, (when, jid))
            else:
                del self.tracks[jid]
                self.host.delete_record(SPACE, jid)
        return bool(due) and due[0][0] <= now

    # -- state changes ---------------------------------------------------------------

    def _set(self, jid: str, t: _Track, state: str, final: bool) -> None:
        t.state = state
        self._touch(jid, t, final)

    def _touch(self, jid: str, t: _Track, final: bool) -> None:
        host = self.host
        t.updated = host.clock.now()
        t.updated_at = host.now_string()
        if final and not t.final:
            heapq.heappush(self._due, (t.updated + RETENTION, jid))
        t.final = final
        host.put_record(SPACE, jid, t.record())

    def pushed(self, job: Payload) -> None:
        if not wants_tracking(job["custom"]):
            return
        jid = job["jid"]
        t = self.tracks.get(jid)
        if t is None or not t.tracked:
            old, t = t, _Track(True)
            if old is not None:  # values a SET stored before the push are kept
                t.percent, t.desc = old.percent, old.desc
            self.tracks[jid] = t
        self._set(jid, t, ENQUEUED, False)

    def reserved(self, res: Reservation, job: Payload | None) -> None:
        t = self.tracks.get(res.jid)
        if t is not None and t.tracked:
            self._set(res.jid, t, WORKING, False)

    def acked(self, res: Reservation, job: Payload | None) -> None:
        t = self.tracks.get(res.jid)
        if t is not None and t.tracked:
            self._set(res.jid, t, SUCCESS, True)

    def failed(self, res: Reservation, job: Payload, outcome: str) -> None:
        t = self.tracks.get(res.jid)
        if t is not None and t.tracked:
            if outcome == DEAD:
                self._set(res.jid, t, DEAD_STATE, True)
            else:  # a retry waits (not final); a retry: 0 job is dropped (final)
                self._set(res.jid, t, FAILED, outcome == DISCARD)

    def released(self, res: Reservation, reason: str) -> None:
        if reason == PUT_BACK:  # the FETCH reply never arrived: as if never fetched
            t = self.tracks.get(res.jid)
            if t is not None and t.tracked and t.state == WORKING:
                self._set(res.jid, t, ENQUEUED, False)

    def discarded(self, job: Payload, reason: str) -> None:
        # Expired at FETCH: it never ran and no longer exists (docs 4.4).
        jid = job.get("jid") or ""
        if self.tracks.pop(jid, None) is not None:
            self.host.delete_record(SPACE, jid)

    def removed(self, jid: str, payload: bytes, how: str) -> None:
        t = self.tracks.get(jid)
        if t is None:
            return
        if how == DELETED:  # gone from the server: nothing left to report (docs 4.4)
            del self.tracks[jid]
            self.host.delete_record(SPACE, jid)
        elif t.tracked and how == KILLED:
            self._set(jid, t, DEAD_STATE, True)
        elif t.tracked and how == REQUEUED:
            self._set(jid, t, ENQUEUED, False)

    # -- TRACK -----------------------------------------------------------------------

    def _command(self, arg: bytes | None, client: CommandClient) -> bytes:
        sub, _, rest = (arg or b"").partition(b" ")
        name = sub.decode("utf-8", "replace").upper()
        if name == "GET":
            return self._get(rest.decode("utf-8", "replace"))
        if name == "SET":
            return self._set_command(rest)
        return encode_error(f"no such TRACK subcommand: {name}")

    def _get(self, jid: str) -> bytes:
        if not jid:
            return encode_error("missing JID")
        t = self.tracks.get(jid)
        if t is None:
            return encode_bulk(struct_json([("jid", jid), ("state", UNKNOWN), ("updated_at", "")]))
        pairs: list[tuple[str, Any]] = [("jid", jid)]
        if t.desc:
            pairs.append(("desc", t.desc))
        pairs += [("state", t.state), ("updated_at", t.updated_at)]
        if t.percent:
            pairs.append(("percent", t.percent))
        return encode_bulk(struct_json(pairs))

    def _set_command(self, data: bytes) -> bytes:
        try:
            value = self._decode(data)
            if not isinstance(value, dict):
                raise GoJSONError(
                    f"json: cannot unmarshal {json_kind(value)} into Go value of type "
                    "client.JobTrack"
                )
            jid = check_field(value.get("jid"), "JobTrack.jid", STRING)
            desc = check_field(value.get("desc"), "JobTrack.desc", STRING)
            until_text = check_field(value.get("reserve_until"), "JobTrack.reserve_until", STRING)
        except GoJSONError as exc:
            return encode_error(f"invalid JSON: {exc}")
        if not jid:
            return encode_error("missing JID")
        percent = value.get("percent")
        if percent is None:
            percent = 0
        elif type(percent) is not int or not 0 <= percent <= 100:
            return encode_error("invalid percent: must be an integer from 0 to 100")
        until = None
        if until_text:
            try:
                until = parse_rfc3339(until_text)
            except ValueError as exc:
                return encode_error(
                    f"invalid timestamp for 'reserve_until': {go_quote(until_text)}: {exc}"
                )
        t = self.tracks.get(jid)
        final = True  # a record made by SET alone expires like a finished job's
        if t is None:
            t = self.tracks[jid] = _Track(False)
        else:
            final = t.final
        t.percent, t.desc = percent, desc or ""
        self._touch(jid, t, final)
        if until is not None and until > self.host.clock.now():
            # Never shortens; capped at a day from now; stored with the reservation.
            self.host.extend_reservation(jid, until)
        return OK

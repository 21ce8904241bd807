"""Faktory Enterprise's batches in werk's server: the ``BATCH`` command, member
accounting and callbacks (docs/enterprise.md section 3, werk's choices in section 13).

Per member event the work is O(1): counters and a set of the failed members' jids, no
list of members. Durability is through the extension's records, written in the same
event-loop turn (so the same group commit) as the job change that caused them:

* ``batch`` / bid: what changes seldom (parent, description, callbacks, committed, the
  callback states), rewritten at NEW, COMMIT and each callback state change;
* ``batch.n`` / bid: ``total pending failed updated``, rewritten at every member event;
* ``batch.f`` / ``bid jid``: one per failed member not yet succeeded.

A callback is pushed (:meth:`Host.push`) in the turn whose record change marks it
enqueued, so after ``kill -9`` either both are stored or neither is: a callback is never
lost and never pushed twice.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from werk._protocol.resp import OK, encode_bulk, encode_error
from werk.server._batch import (
    ENQUEUED,
    NO_STATE,
    SUCCEEDED,
    Batch,
    BatchInfo,
    new_bid,
    parse_new,
)
from werk.server._extension import (
    REQUEUED,
    CommandClient,
    CommandHandler,
    Extension,
    MetricSample,
    Records,
)
from werk.server._payload import Payload
from werk.server._sets import Reservation

__all__ = ["COMMITTED_TTL", "UNCOMMITTED_TTL", "Batches", "member_bid"]

# A stored payload is the codec's canonical encoding: ``{"retry":N,`` then ``"failure":``
# (a job that failed before) or ``"custom":`` (keys sorted). Without a failure, the custom
# object can be read on its own, straight after this prefix.
_CUSTOM_FIRST = re.compile(rb'\{"retry":(?:-?[0-9]+|null),"custom":')
# A member whose custom object starts with its bid (keys are sorted): the bid alone.
_MEMBER = re.compile(rb'\{"retry":(?:-?[0-9]+|null),"custom":\{"bid":"([A-Za-z0-9_-]+)"[,}]')
_raw_decode = json.JSONDecoder().raw_decode

log = logging.getLogger("werk.server")

META, COUNTS, FAILED = "batch", "batch.n", "batch.f"
UNCOMMITTED_TTL = 30 * 60.0  # from NEW
COMMITTED_TTL = 30 * 24 * 3600.0  # from the last change
RECHECK = 3600.0  # a committed batch whose parent still exists is looked at again then
TICK_SLICE = 500  # batches expired per tick() call


class Batches(Extension):
    """The ``BATCH`` command and batch accounting (see the module docstring).

    Read API for the web UI (call on the server's event loop, e.g. through
    ``EmbeddedServer.call``; find the instance with ``_features.batches_of(manager)``):
    :meth:`list_batches`, :meth:`count`, :meth:`get_batch`, :meth:`status_json`,
    :meth:`children`, :meth:`failed_members`. Member jids are not kept (a batch of a
    million jobs would cost tens of megabytes): a batch's jobs are found in the queues and
    sets by their ``custom.bid``; only the failed ones not yet succeeded are listed here.
    """

    # acked() reads only custom.bid / custom._bid, which it finds in the payload itself
    # (see _custom_of) without decoding the whole job.
    needs_job = False

    def __init__(self) -> None:
        self.batches: dict[str, Batch] = {}  # in order of NEW: oldest first
        self._due: list[tuple[float, str]] = []  # (when to look again, bid), lazy
        self._warned: set[str] = set()  # bids warned about members added after firing

    # -- read API (web UI) -----------------------------------------------------------

    def count(self) -> int:
        """How many batches exist."""
        return len(self.batches)

    def list_batches(self, offset: int = 0, limit: int = 25) -> list[BatchInfo]:
        """Batches newest first (by NEW), ``limit`` of them from ``offset``."""
        chosen = itertools.islice(reversed(self.batches.values()), offset, offset + limit)
        return [b.info(len(b.children)) for b in chosen]

    def get_batch(self, bid: str) -> BatchInfo | None:
        """One batch, or None if there is none (never was, expired, or deleted)."""
        b = self.batches.get(bid)
        return None if b is None else b.info(len(b.children))

    def status_json(self, bid: str) -> bytes | None:
        """Exactly what ``BATCH STATUS`` answers (JSON bytes), or None."""
        b = self.batches.get(bid)
        return None if b is None else b.status()

    def children(self, bid: str) -> list[str]:
        """The bids of a batch's child batches that still exist, oldest first."""
        b = self.batches.get(bid)
        return [] if b is None else list(b.children)

    def failed_members(self, bid: str) -> list[str]:
        """The jids of the members that failed and have not succeeded since, sorted."""
        b = self.batches.get(bid)
        return [] if b is None else sorted(b.failed_jids)

    # -- life cycle ------------------------------------------------------------------

    def load(self, records: Records) -> None:
        counts = records.get(COUNTS, {})
        loaded = [
            Batch.from_records(bid, meta, counts.get(bid))
            for bid, meta in records.get(META, {}).items()
        ]
        loaded.sort(key=lambda b: (b.created, b.bid))
        self.batches = {b.bid: b for b in loaded}
        for key in records.get(FAILED, {}):
            bid, _, jid = key.partition(" ")
            b = self.batches.get(bid)
            if b is not None:
                b.failed_jids.add(jid)
        for b in loaded:
            parent = self.batches.get(b.parent_bid) if b.parent_bid else None
            if parent is not None:
                parent.children.append(b.bid)
        # Deepest first, so that a batch's children are finished (or not) before it.
        depths = self._depths()
        for b in sorted(loaded, key=lambda b: depths[b.bid], reverse=True):
            b.c_done, b.s_done = b.finished()
            parent = self.batches.get(b.parent_bid) if b.parent_bid else None
            if parent is not None:
                parent.open_c += not b.c_done
                parent.open_s += not b.s_done
        self._due = [(self._due_time(b), b.bid) for b in loaded]
        heapq.heapify(self._due)

    def _depths(self) -> dict[str, int]:
        """How many ancestors each batch has (those still stored), each chain walked once."""
        depths: dict[str, int] = {}
        for b in self.batches.values():
            chain, on_chain = [], set()
            while b.bid not in depths:
                chain.append(b)
                on_chain.add(b.bid)
                parent = self.batches.get(b.parent_bid) if b.parent_bid else None
                if parent is None or parent.bid in on_chain:  # a root (a loop is never made)
                    depths[b.bid] = 0
                    chain.pop()
                    break
                b = parent
            depth = depths[b.bid]
            for walked in reversed(chain):
                depth += 1
                depths[walked.bid] = depth
        return depths

    def metric_samples(self) -> list[MetricSample]:
        open_ = sum(1 for b in self.batches.values() if not b.committed)
        return [
            MetricSample(
                "werk_server_batches",
                n,
                help="Batches the server holds, by whether they are committed.",
                labels={"state": state},
            )
            for state, n in (("open", open_), ("committed", len(self.batches) - open_))
        ]

    def flushed(self) -> None:
        # FLUSH erased every job, members and callbacks alike: their batches go too.
        self.batches.clear()
        self._due.clear()
        self._warned.clear()
        for space in (META, COUNTS, FAILED):
            self.host.clear_records(space)

    def commands(self) -> Mapping[bytes, CommandHandler]:
        return {b"BATCH": self._command}

    # -- records ---------------------------------------------------------------------

    def _save_meta(self, b: Batch) -> None:
        self.host.put_record(META, b.bid, b.meta_record())

    def _save_counts(self, b: Batch) -> None:
        self.host.put_record(COUNTS, b.bid, b.counts_record())

    # -- BATCH -----------------------------------------------------------------------

    def _command(self, arg: bytes | None, client: CommandClient) -> bytes:
        sub, _, rest = (arg or b"").partition(b" ")
        name = sub.decode("utf-8", "replace").upper()
        if name == "NEW":
            return self._new(rest)
        if name not in ("OPEN", "COMMIT", "STATUS"):
            return encode_error(f"no such BATCH subcommand: {name}")
        bid = rest.decode("utf-8", "replace")
        b = self.batches.get(bid)
        if b is None:
            return encode_error(f"no such batch {bid}")
        if name == "STATUS":
            return encode_bulk(b.status())
        if name == "OPEN":
            return encode_bulk(b.bid.encode())  # changes nothing (docs 3.5)
        if not b.committed:
            b.committed = True
            b.updated = self.host.clock.now()
            self._save_meta(b)
            self._save_counts(b)
        self._settle(b)
        return OK

    def _new(self, data: bytes) -> bytes:
        req = parse_new(data, self.host.codec)
        if isinstance(req, str):
            return encode_error(req)
        parent = None
        if req.parent_bid:
            parent = self.batches.get(req.parent_bid)
            if parent is None:
                return encode_error(f"no such batch {req.parent_bid}")
        now = self.host.clock.now()
        bid = new_bid()
        while bid in self.batches:
            bid = new_bid()
        b = Batch(
            bid,
            req.parent_bid,
            req.description,
            now,
            self.host.now_string(),
            req.complete,
            req.success,
        )
        self.batches[bid] = b
        self._save_meta(b)
        self._save_counts(b)
        heapq.heappush(self._due, (now + UNCOMMITTED_TTL, bid))
        if parent is not None:
            parent.children.append(bid)
            parent.open_c += 1
            parent.open_s += 1
            parent.updated = now
            self._save_counts(parent)
            self._settle(parent)  # it may have been finished: no longer
        return encode_bulk(bid.encode())

    # -- members ---------------------------------------------------------------------

    def check_push(self, job: Payload) -> str | None:
        custom = job["custom"]
        if "bid" not in custom:
            return None
        bid = custom["bid"]
        if bid is None:
            return None
        if not isinstance(bid, str):
            return "invalid bid: must be a string"
        if bid not in self.batches:
            return f"no such batch {bid}"
        return None

    def pushed(self, job: Payload) -> None:
        bid = job["custom"].get("bid")
        if not bid:
            return
        b = self.batches[bid]  # check_push made sure of it, in this same turn
        b.total += 1
        b.pending += 1
        b.updated = self.host.clock.now()
        self._save_counts(b)
        if (b.complete_st or b.success_st) and bid not in self._warned:
            self._warned.add(bid)  # once per batch: a reopened batch may get thousands
            log.warning("batch %s: job %s added after its callbacks fired", bid, job["jid"])
        if b.c_done or b.s_done:
            self._settle(b)

    def acked(self, res: Reservation, job: Payload | None) -> None:
        if job is None:
            m = _MEMBER.match(res.payload)  # the common case, read without decoding
            if m is not None:
                self._member_acked(m.group(1).decode(), res.jid)
                return
            custom = _custom_of(res.payload) if res.custom else None
        else:
            custom = job.get("custom")
        if not custom:
            return
        bid = custom.get("bid")
        if bid and isinstance(bid, str):
            self._member_acked(bid, res.jid)
            return
        cbid = custom.get("_bid")
        if cbid and isinstance(cbid, str):
            self._callback_acked(cbid, custom.get("_cb"), res.jid)

    def _member_acked(self, bid: str, jid: str) -> None:
        b = self.batches.get(bid)
        if b is None:
            return  # expired or deleted: no longer counted
        b.pending -= 1
        if jid in b.failed_jids:
            b.failed_jids.discard(jid)
            b.failed -= 1
            self.host.delete_record(FAILED, f"{bid} {jid}")
        b.updated = self.host.clock.now()
        self.host.put_record(COUNTS, bid, b.counts_record())
        if b.committed and b.pending == b.failed:
            self._settle(b)

    def failed(self, res: Reservation, job: Payload, outcome: str) -> None:
        bid = (job.get("custom") or {}).get("bid")
        if bid:
            self._member_failed(bid, res.jid)

    def discarded(self, job: Payload, reason: str) -> None:
        # Expired at FETCH: counted as a failure (docs 3.6); it will never succeed.
        bid = (job.get("custom") or {}).get("bid")
        if bid:
            self._member_failed(bid, job["jid"])

    def removed(self, jid: str, payload: bytes, how: str) -> None:
        # Killed or erased by the operator: it will never succeed, so it counts as a
        # failure, once, like a member that died (docs 3.6). A requeued one is pending
        # still; a callback keeps its state (as when it dies).
        if how == REQUEUED:
            return
        bid = member_bid(payload)
        if bid is not None:
            self._member_failed(bid, jid)

    def _member_failed(self, bid: str, jid: str) -> None:
        b = self.batches.get(bid)
        if b is None or jid in b.failed_jids:
            return
        b.failed_jids.add(jid)
        b.failed += 1
        b.updated = self.host.clock.now()
        self.host.put_record(FAILED, f"{bid} {jid}", b"")
        self._save_counts(b)
        if b.committed and b.pending == b.failed:
            self._settle(b)

    def _callback_acked(self, bid: str, which: object, jid: str) -> None:
        b = self.batches.get(bid)
        if b is None:
            return
        if which == "complete" and b.complete_st == ENQUEUED and jid == b.complete_jid:
            b.complete_st = SUCCEEDED
        elif which == "success" and b.success_st == ENQUEUED and jid == b.success_jid:
            b.success_st = SUCCEEDED
        else:
            return
        b.updated = self.host.clock.now()
        self._save_meta(b)
        self._save_counts(b)
        self._settle(b)

    # -- firing (docs 3.6) -----------------------------------------------------------

    def _settle(self, b: Batch | None) -> None:
        """Fire what ``b`` has reached, then carry the change of its finished state up
        to its parent, and so on (iteratively: nesting may be deep)."""
        while b is not None:
            self._fire(b)
            c_done, s_done = b.finished()
            if c_done == b.c_done and s_done == b.s_done:
                return
            parent = self.batches.get(b.parent_bid) if b.parent_bid else None
            if parent is not None:
                parent.open_c += int(not c_done) - int(not b.c_done)
                parent.open_s += int(not s_done) - int(not b.s_done)
            b.c_done, b.s_done = c_done, s_done
            b = parent

    def _fire(self, b: Batch) -> None:
        # The state moves only once the push is accepted: a refused callback (only
        # another extension can refuse one) is tried again at the next evaluation.
        if (
            b.complete is not None
            and b.complete_st == NO_STATE
            and b.complete_reached()
            and self._push_callback(b, b.complete, "complete")
        ):
            b.complete_st = ENQUEUED
            self._save_meta(b)
        if (
            b.success is not None
            and b.success_st == NO_STATE
            and (b.complete is None or b.complete_st == SUCCEEDED)
            and b.success_reached()
            and self._push_callback(b, b.success, "success")
        ):
            b.success_st = ENQUEUED
            self._save_meta(b)

    def _push_callback(self, b: Batch, callback: bytes, which: str) -> bool:
        job: Payload = self.host.codec.decode_job(callback)
        custom = job.get("custom") or {}
        custom["_bid"] = b.bid
        custom["_cb"] = which
        if b.parent_bid:
            custom["_pbid"] = b.parent_bid
        job["custom"] = custom
        error = self.host.push(job)
        if error is not None:  # checked at NEW; only another extension can refuse it
            log.error("batch %s: %s callback %s refused: %s", b.bid, which, job["jid"], error)
            return False
        return True

    # -- expiry (docs 3.9) -----------------------------------------------------------

    def _due_time(self, b: Batch) -> float:
        if not b.committed:
            return b.created + UNCOMMITTED_TTL
        return b.updated + COMMITTED_TTL

    def tick(self, now: float) -> bool:
        due = self._due
        for _ in range(TICK_SLICE):
            if not due or due[0][0] > now:
                return False
            _, bid = heapq.heappop(due)
            b = self.batches.get(bid)
            if b is None:
                continue
            when = self._due_time(b)
            if when > now:
                heapq.heappush(due, (when, bid))
            elif b.committed and b.parent_bid in self.batches:
                # Deleted top-down only: deleting a child that never finished would let
                # its parent's callbacks fire.
                heapq.heappush(due, (now + RECHECK, bid))
            else:
                self._delete(b)
        return bool(due) and due[0][0] <= now

    def _delete(self, b: Batch) -> None:
        del self.batches[b.bid]
        self._warned.discard(b.bid)
        host = self.host
        host.delete_record(META, b.bid)
        host.delete_record(COUNTS, b.bid)
        for jid in b.failed_jids:
            host.delete_record(FAILED, f"{b.bid} {jid}")
        log.info("batch %s %s", b.bid, "expired uncommitted" if not b.committed else "deleted")
        parent = self.batches.get(b.parent_bid) if b.parent_bid else None
        if parent is not None:  # an uncommitted child: the parent waits for it no more
            parent.children.remove(b.bid)
            parent.open_c -= not b.c_done
            parent.open_s -= not b.s_done
            self._settle(parent)


def member_bid(payload: bytes) -> str | None:
    """The bid of the batch a stored job is a member of (its ``custom.bid``), else None;
    found without decoding the payload when it has the usual shape."""
    m = _MEMBER.match(payload)
    if m is not None:
        return m.group(1).decode()
    custom = _custom_of(payload)
    bid = custom.get("bid") if custom else None
    return bid if bid and isinstance(bid, str) else None


def _custom_of(payload: bytes) -> dict[str, Any] | None:
    """The ``custom`` object of a stored payload as far as batches care: None for a job
    that is neither a member nor a callback (most jobs with ``custom``, found without
    decoding anything), else the object, decoded alone when the payload allows it."""
    if b'bid":' not in payload:  # neither "bid" nor "_bid" anywhere
        return None
    m = _CUSTOM_FIRST.match(payload)
    if m is not None:
        value, _ = _raw_decode(payload.decode("utf-8", "replace"), m.end())
    else:
        value = json.loads(payload).get("custom")
    return value if isinstance(value, dict) else None

"""Batches and tracked jobs for the web UI, read from werk's server (the ``Batches`` and
``Tracking`` extensions' read API); :class:`~werk.web._server_backend.ServerBackend`
delegates to these functions.

A server without one of the extensions has nothing to show: every function answers empty.
Member jids are not kept by the server, so a batch's page lists its counters, children,
callbacks and the members that failed and have not succeeded since; looking those up in
Retries, Dead and Busy is one pass over the sets, a chunk per event-loop turn.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

from werk.server._batch import Batch, BatchInfo
from werk.server._batches import Batches, member_bid
from werk.server._features import batches_of, tracking_of
from werk.server._manager import Manager
from werk.web._backend import (
    BatchCallback,
    BatchDetail,
    BatchFilter,
    BatchJob,
    BatchSummary,
    Track,
    batch_status,
)

__all__ = ["batch_detail", "batch_jobs", "batch_window", "features", "tracks"]

CHUNK = 5_000
"""Batches or set entries looked at per event-loop turn (a filter over 50,000 batches
takes about 80 ms in all, so a turn stays under 10 ms)."""


def features(manager: Manager) -> frozenset[str]:
    """``batches`` and ``tracking``, when the server runs those extensions."""
    found = []
    if batches_of(manager) is not None:
        found.append("batches")
    if tracking_of(manager) is not None:
        found.append("tracking")
    return frozenset(found)


def _summary(info: BatchInfo) -> BatchSummary:
    return BatchSummary(
        bid=info.bid,
        parent_bid=info.parent_bid,
        description=info.description,
        created_at=info.created_at,
        committed=info.committed,
        total=info.total,
        pending=info.pending,
        failed=info.failed,
        complete_st=info.complete_st,
        success_st=info.success_st,
        has_complete=info.has_complete,
        has_success=info.has_success,
        children=info.children,
    )


def _chosen(b: Batch, which: BatchFilter) -> bool:
    # On the server's own objects: building a summary of every batch would cost more
    # than the test (a filter looks at all of them).
    if which == "failed":
        return b.failed > 0
    succeeded = batch_status(b.committed, b.pending, b.failed) == "succeeded"
    return succeeded if which == "succeeded" else not succeeded  # "running"


async def batch_window(
    manager: Manager, offset: int, count: int, which: BatchFilter
) -> tuple[int, list[BatchSummary]]:
    """Batches newest first, ``count`` from ``offset`` among those ``which`` chooses."""
    ext = batches_of(manager)
    if ext is None:
        return 0, []
    if which == "all":
        return ext.count(), [_summary(i) for i in ext.list_batches(offset, count)]
    # A filter has to look at every batch to count them; a chunk per loop turn.
    total, window = 0, []
    snapshot = list(reversed(ext.batches.values()))
    for start in range(0, len(snapshot), CHUNK):
        if start:
            await asyncio.sleep(0)
        for b in islice(snapshot, start, start + CHUNK):
            if b.bid not in ext.batches or not _chosen(b, which):
                continue  # deleted while we waited, or not asked for
            if offset <= total < offset + count:
                info = ext.get_batch(b.bid)
                if info is not None:
                    window.append(_summary(info))
            total += 1
    return total, window


def _callbacks(ext: Batches, info: BatchInfo) -> tuple[BatchCallback, ...]:
    b = ext.batches.get(info.bid)
    if b is None:
        return ()
    summary = _summary(info)
    out = []
    for kind, raw in (("complete", b.complete), ("success", b.success)):
        if raw is None:
            continue
        job = json.loads(raw)
        out.append(
            BatchCallback(
                kind=kind,
                jid=str(job.get("jid", "")),
                jobtype=str(job.get("jobtype", "")),
                queue=str(job.get("queue") or "default"),
                state=summary.callback_state(kind),
            )
        )
    return tuple(out)


async def _where(manager: Manager, jids: Iterable[str]) -> dict[str, str]:
    """Where each jid is now: ``busy``, ``retries`` or ``dead`` (absent: none of them)."""
    wanted = set(jids)
    found = {jid: "busy" for jid in wanted if jid in manager.reservations}
    wanted -= found.keys()
    for name, entries in (("retries", manager.retries.entries), ("dead", manager.dead.entries)):
        snapshot = list(entries.values())
        for start in range(0, len(snapshot), CHUNK):
            if not wanted:
                return found
            await asyncio.sleep(0)
            for entry in islice(snapshot, start, start + CHUNK):
                if entry.jid in wanted:
                    found[entry.jid] = name
                    wanted.discard(entry.jid)
    return found


async def batch_detail(manager: Manager, bid: str, failed_limit: int) -> BatchDetail | None:
    """One batch's page (see :class:`~werk.web._backend.BatchDetail`)."""
    ext = batches_of(manager)
    info = None if ext is None else ext.get_batch(bid)
    if ext is None or info is None:
        return None
    children = [ext.get_batch(child) for child in ext.children(bid)]
    b = ext.batches.get(bid)
    # The first few in order without sorting them all (a batch may have 100,000 failed).
    failed = heapq.nsmallest(failed_limit, b.failed_jids) if b is not None else []
    where = await _where(manager, failed)
    return BatchDetail(
        batch=_summary(info),
        children=tuple(_summary(c) for c in children if c is not None),
        callbacks=_callbacks(ext, info),
        failed_jids=tuple((jid, where.get(jid, "")) for jid in failed),
    )


def _is_member(payload: bytes, needle: bytes, bid: bytes) -> bool:
    # A byte search first (stored payloads are canonical JSON: ``"bid":"<bid>"`` with no
    # spaces); the bid may also be in the args, so the payload's custom.bid decides, read
    # the way the batches extension reads it at ACK (mostly without decoding anything).
    return needle in payload and member_bid(payload) == bid.decode()


def _job(payload: bytes) -> dict[str, Any]:
    try:
        job = json.loads(payload)
    except ValueError:
        return {}
    return job if isinstance(job, dict) else {}


async def batch_jobs(manager: Manager, bid: str, limit: int) -> tuple[int, list[BatchJob]]:
    """The member jobs of ``bid`` still in the server, found by their ``custom.bid`` in
    every queue, the scheduled, retries and dead sets and the jobs in progress: how many,
    and the first ``limit`` of them. One pass over every job, a chunk per loop turn."""
    raw = bid.encode()
    needle = b'"bid":"' + raw + b'"'
    found: list[BatchJob] = []
    total = 0
    places: list[tuple[str, str, list[Any]]] = [("busy", "", list(manager.reservations.values()))]
    places += [("queue", name, list(q)) for name, q in sorted(manager.queues.items())]
    places += [
        (name, "", list(s.entries.values()))
        for name, s in (
            ("scheduled", manager.scheduled),
            ("retries", manager.retries),
            ("dead", manager.dead),
        )
    ]
    for where, queue, items in places:
        for start in range(0, len(items), CHUNK):
            await asyncio.sleep(0)
            for item in islice(items, start, start + CHUNK):
                if not _is_member(item.payload, needle, raw):
                    continue
                total += 1
                if len(found) < limit:  # only the jobs shown are decoded in full
                    found.append(BatchJob(where, queue, item.jid, _job(item.payload)))
    return total, found


def tracks(manager: Manager, jids: Sequence[str]) -> dict[str, Track]:
    """The tracking records of those ``jids`` that have one."""
    ext = tracking_of(manager)
    if ext is None:
        return {}
    return {
        jid: Track(t.jid, t.state, t.percent, t.desc, t.updated_at)
        for jid, t in ext.tracks_of(list(jids)).items()
    }

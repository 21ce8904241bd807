"""Batches (Faktory Enterprise's, served by werk's server): every batch page by page with
its progress, pending and failed counts and callback states; one batch's page with its
parent, child batches, callbacks, the members that failed and those in progress.

Read-only, and shown only when the server runs the batches extension. The server does
not keep member jids (a batch of a million jobs costs no more than one of ten), so a
batch's page shows the members it knows: the failed ones and the ones being worked on.
On request (``?jobs=1``) it looks for the others in every queue and set by their
``custom.bid``, which reads every job the server holds.
"""

from __future__ import annotations

import re

from aiohttp import web

from werk.web._backend import BATCH_FILTERS, BatchFilter
from werk.web._paging import Pager
from werk.web._render import ctx_of, features_of, not_found, render

__all__ = ["FEATURE", "ROUTES", "TABS"]

FEATURE = "batches"
"""The server feature these pages need (the tab is hidden without it)."""

# Bids are made by the server (``b-`` and base64url); anything else cannot name a batch.
_BID = re.compile(r"\Ab-[A-Za-z0-9_-]{1,64}\Z")
FAILED_SHOWN = 100
"""Failed members listed on a batch's page (the count says how many there are)."""
JOBS_SHOWN = 100
"""Member jobs listed when a batch's page looks for them (``?jobs=1``)."""


def _filter(raw: str | None) -> BatchFilter:
    for which in BATCH_FILTERS:
        if raw == which:
            return which
    return "all"


_NO_FEATURE = "This server does not run batches."
_NO_BATCH = "There is no such batch (it never existed, expired or was deleted)."


def _has_batches(request: web.Request) -> bool:
    return FEATURE in features_of(ctx_of(request).backend)


async def batches_page(request: web.Request) -> web.Response:
    """Batches, newest first, filtered by ``state``."""
    if not _has_batches(request):
        return await not_found(request, _NO_FEATURE)
    backend = ctx_of(request).backend
    which = _filter(request.query.get("state"))
    pager = Pager.from_query(request.query.get("page"))
    total, batches = await backend.batches(pager.offset, pager.per_page, which)
    if not batches and total and pager.page > 1:
        pager = pager.with_total(total)  # past the end: the last page instead
        total, batches = await backend.batches(pager.offset, pager.per_page, which)
    return await render(
        request,
        "batches.html",
        batches=batches,
        pager=pager.with_total(total),
        which=which,
        filters=BATCH_FILTERS,
    )


async def batch_page(request: web.Request) -> web.Response:
    """One batch: its status, parent, children, callbacks and known members."""
    if not _has_batches(request):
        return await not_found(request, _NO_FEATURE)
    backend = ctx_of(request).backend
    bid = request.match_info["bid"]
    detail = await backend.batch(bid, FAILED_SHOWN) if _BID.match(bid) else None
    if detail is None:
        return await not_found(request, _NO_BATCH)
    working = [
        r
        for r in await backend.reservations()
        if isinstance(r.job.get("custom"), dict) and r.job["custom"].get("bid") == bid
    ]
    tracks = {}
    if working and "tracking" in features_of(backend):
        tracks = await backend.tracks([str(r.job.get("jid", "")) for r in working])
    # Finding the members means reading every job: only when asked for.
    jobs = await backend.batch_jobs(bid, JOBS_SHOWN) if request.query.get("jobs") == "1" else None
    return await render(
        request,
        "batch.html",
        detail=detail,
        b=detail.batch,
        working=working,
        tracks=tracks,
        jobs=jobs,
    )


TABS = (("Batches", "/batches"),)
ROUTES: tuple[web.RouteDef, ...] = (
    web.get("/batches", batches_page, name="batches"),
    web.get("/batches/{bid}", batch_page, name="batch"),
)

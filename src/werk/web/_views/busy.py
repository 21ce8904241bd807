"""Busy: every worker process and every job in progress (with the progress a tracked job
reports by ``TRACK SET``); quiet or terminate a worker or all.

A signal changes the worker's state on the server only; the worker learns it from the reply to
its next BEAT (``{"state":"quiet"}`` or ``{"state":"terminate"}``), exactly as with Faktory's
own Busy page. States only move forward: running, quiet, terminate.
"""

from __future__ import annotations

from aiohttp import web

from werk.web._backend import Signal
from werk.web._render import ctx_of, features_of, redirect, render

__all__ = ["ROUTES", "TABS"]


async def busy_page(request: web.Request) -> web.Response:
    """Workers and the jobs they hold, with the progress tracked jobs report."""
    backend = ctx_of(request).backend
    workers = await backend.workers()
    reservations = await backend.reservations()
    tracks = {}
    if reservations and "tracking" in features_of(backend):
        tracks = await backend.tracks([str(r.job.get("jid", "")) for r in reservations])
    return await render(
        request, "busy.html", workers=workers, reservations=reservations, tracks=tracks
    )


async def busy_signal(request: web.Request) -> web.StreamResponse:
    """Quiet or terminate one worker (``wid``) or every worker (``wid=all``)."""
    form = await request.post()
    wid = form.get("wid")
    raw = form.get("signal")
    if raw not in ("quiet", "terminate"):
        raise web.HTTPBadRequest(text="400: signal must be quiet or terminate\n")
    if not isinstance(wid, str) or not wid:
        raise web.HTTPBadRequest(text="400: which worker? (wid, or wid=all)\n")
    signal: Signal = "quiet" if raw == "quiet" else "terminate"
    await ctx_of(request).backend.signal_workers(None if wid == "all" else wid, signal)
    raise redirect("/busy", signal, "all" if wid == "all" else 1)


TABS = (("Busy", "/busy"),)
ROUTES: tuple[web.RouteDef, ...] = (
    web.get("/busy", busy_page, name="busy"),
    web.post("/busy", busy_signal, name="busy_signal"),
)

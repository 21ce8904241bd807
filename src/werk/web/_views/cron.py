"""Cron: the server's ``[[cron]]`` entries (schedule, job, next and last run) and one
entry's page with its recent jobs; "Enqueue now" (POST, CSRF-checked) pushes one job of
the entry at once without changing its schedule or its last run."""

from __future__ import annotations

import re

from aiohttp import web

from werk.web._backend import CronInfo, EnqueueRefused, WebBackend
from werk.web._render import ctx_of, not_found, redirect, render

__all__ = ["ROUTES", "TABS"]

_ENTRY_ID = re.compile(r"\A[0-9a-f]{16}(?:-[0-9]+)?\Z")
_NO_ENTRY = "There is no such cron entry (the configuration changed?)."


async def _find(backend: WebBackend, entry_id: str) -> CronInfo | None:
    return next((e for e in await backend.cron_entries() if e.id == entry_id), None)


def _entry_id(request: web.Request) -> str:
    entry_id = request.match_info["id"]
    if not _ENTRY_ID.match(entry_id):
        raise web.HTTPBadRequest(text="400: not a cron entry id\n")
    return entry_id


async def cron_page(request: web.Request) -> web.Response:
    """Every cron entry."""
    entries = await ctx_of(request).backend.cron_entries()
    return await render(request, "cron.html", entries=entries)


async def cron_entry_page(request: web.Request) -> web.Response:
    """One entry and the jobs it pushed lately."""
    entry_id = _entry_id(request)
    entry = next(
        (e for e in await ctx_of(request).backend.cron_entries() if e.id == entry_id), None
    )
    if entry is None:
        return await not_found(request, "There is no such cron entry (the configuration changed?).")
    return await render(request, "cron_entry.html", entry=entry, refused=None)


async def cron_enqueue(request: web.Request) -> web.StreamResponse:
    """Push one job of the entry now."""
    entry_id = _entry_id(request)
    form = await request.post()
    if form.get("action") != "enqueue":
        raise web.HTTPBadRequest(text="400: action must be enqueue\n")
    backend = ctx_of(request).backend
    try:
        await backend.cron_enqueue(entry_id)
    except KeyError:
        return await not_found(request, _NO_ENTRY)
    except EnqueueRefused as exc:
        entry = await _find(backend, entry_id)
        return await render(request, "cron_entry.html", status=409, entry=entry, refused=str(exc))
    target = f"/cron/{entry_id}" if form.get("back") == "entry" else "/cron"
    raise redirect(target, "enqueued", 1)


TABS = (("Cron", "/cron"),)
ROUTES: tuple[web.RouteDef, ...] = (
    web.get("/cron", cron_page, name="cron"),
    web.get("/cron/{id}", cron_entry_page, name="cron_entry"),
    web.post("/cron/{id}", cron_enqueue, name="cron_enqueue"),
)

"""Queues: every queue with size, latency and paused state; one queue's jobs, page by page.

Actions (POST, CSRF-checked) are the server's own QUEUE commands: ``pause``, ``resume`` and
``remove`` (the queue and all its jobs). Deleting single jobs from a queue has no protocol
command; it goes through the backend's ``delete_queue_jobs``.
"""

from __future__ import annotations

from aiohttp import web

from werk._job import QUEUE_NAME_RE
from werk.web._paging import Pager
from werk.web._render import ctx_of, not_found, redirect, render

__all__ = ["ROUTES", "TABS"]

_QUEUE_ACTIONS = ("pause", "resume", "remove")


def _queue_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not QUEUE_NAME_RE.match(name):
        raise web.HTTPBadRequest(text="400: not a queue name\n")
    return name


async def queues_page(request: web.Request) -> web.Response:
    """All queues."""
    queues = await ctx_of(request).backend.queues()
    return await render(request, "queues.html", queues=queues)


async def queue_page(request: web.Request) -> web.Response:
    """One queue's jobs, next to be fetched first."""
    backend = ctx_of(request).backend
    name = _queue_name(request)
    info = next((q for q in await backend.queues() if q.name == name), None)
    if info is None:
        return await not_found(request, f"There is no queue named {name}.")
    pager = Pager.from_query(request.query.get("page")).with_total(info.size)
    total, jobs = await backend.queue_jobs(name, pager.offset, pager.per_page)
    return await render(request, "queue.html", queue=info, jobs=jobs, pager=pager.with_total(total))


async def queue_action(request: web.Request) -> web.StreamResponse:
    """Pause, resume or remove a queue."""
    backend = ctx_of(request).backend
    name = _queue_name(request)
    form = await request.post()
    action = form.get("action")
    if action == "pause":
        await backend.pause_queues([name])
    elif action == "resume":
        await backend.resume_queues([name])
    elif action == "remove":
        await backend.remove_queues([name])
    else:
        raise web.HTTPBadRequest(text=f"400: action must be one of {', '.join(_QUEUE_ACTIONS)}\n")
    back = form.get("back")
    target = f"/queues/{name}" if back == "queue" and action != "remove" else "/queues"
    raise redirect(target, str(action))


async def queue_delete_jobs(request: web.Request) -> web.StreamResponse:
    """Delete the selected jobs (or the one whose button was pressed) from a queue."""
    backend = ctx_of(request).backend
    name = _queue_name(request)
    form = await request.post()
    only = form.get("only")
    jids = [only] if isinstance(only, str) and only else [str(j) for j in form.getall("jid", [])]
    page = form.get("page")
    target = f"/queues/{name}"
    if isinstance(page, str) and page.isdigit() and page != "1":
        target = f"{target}?page={page}"
    if not jids:
        raise redirect(target, "none")
    removed = await backend.delete_queue_jobs(name, jids)
    raise redirect(target, "deleted", removed)


TABS = (("Queues", "/queues"),)
ROUTES: tuple[web.RouteDef, ...] = (
    web.get("/queues", queues_page, name="queues"),
    web.get("/queues/{name}", queue_page, name="queue"),
    web.post("/queues/{name}", queue_action, name="queue_action"),
    web.post("/queues/{name}/delete", queue_delete_jobs, name="queue_delete"),
)

"""Dashboard: totals, the live processed/failed graph, daily history, queues, server facts.

``GET /`` renders the page; ``GET /stats.json`` is what the page's script polls every few
seconds to move the live graph and the counters.
"""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from werk.web._charts import history_chart
from werk.web._render import ctx_of, render

__all__ = ["ROUTES", "TABS"]

HISTORY_CHOICES = (7, 30, 90, 180)


def _days(raw: str | None) -> int:
    try:
        days = int(raw or "30")
    except ValueError:
        return 30
    return days if days in HISTORY_CHOICES else 30


async def dashboard(request: web.Request) -> web.Response:
    """The home page."""
    backend = ctx_of(request).backend
    days = _days(request.query.get("days"))
    stats = await backend.stats()
    queues = await backend.queues()
    history = await backend.history(days)
    return await render(
        request,
        "dashboard.html",
        stats=stats,
        queues=queues,
        chart=history_chart(history),
        days=days,
        day_choices=HISTORY_CHOICES,
    )


async def stats_json(request: web.Request) -> web.Response:
    """Counters for the live graph: processed/failed totals, set sizes, server facts."""
    stats = await ctx_of(request).backend.stats()
    return web.json_response(asdict(stats), headers={"Cache-Control": "no-store"})


TABS = (("Dashboard", "/"),)
ROUTES: tuple[web.RouteDef, ...] = (
    web.get("/", dashboard, name="dashboard"),
    web.get("/stats.json", stats_json, name="stats"),
)

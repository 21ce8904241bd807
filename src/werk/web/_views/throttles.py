"""Throttles: each ``[throttles]`` entry of the server's configuration with its limit, the
slots in use and the jobs waiting in its queue; and how many expired jobs FETCH dropped.

Read-only: limits change in the configuration files (``werk server --config-dir``) and a
reload (SIGHUP).
"""

from __future__ import annotations

from aiohttp import web

from werk.web._render import ctx_of, render

__all__ = ["ROUTES", "TABS"]


async def throttles_page(request: web.Request) -> web.Response:
    """Every throttle's use, and the expired-job count."""
    backend = ctx_of(request).backend
    throttles = await backend.throttles()
    expired = await backend.expired_jobs()
    return await render(request, "throttles.html", throttles=throttles, expired=expired)


TABS = (("Throttles", "/throttles"),)
ROUTES: tuple[web.RouteDef, ...] = (web.get("/throttles", throttles_page, name="throttles"),)

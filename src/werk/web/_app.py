"""The aiohttp application: the middlewares, every view's routes and the static files."""

from __future__ import annotations

from aiohttp import web

from werk.web._backend import WebBackend
from werk.web._render import CTX_KEY, HERE, WebContext, build_env
from werk.web._security import basic_auth, csrf_protect, headers
from werk.web._views import busy, dashboard, queues, sets

__all__ = ["ROUTES", "build_app"]

ROUTES: tuple[web.RouteDef, ...] = (
    *dashboard.ROUTES,
    *queues.ROUTES,
    *busy.ROUTES,
    *sets.ROUTES,
)
"""Every page, in the order the router tries them."""


def build_app(
    backend: WebBackend, password: str | None = None, title: str = "werk"
) -> web.Application:
    """The web UI as an aiohttp application over ``backend`` (with ``password``, every
    page asks for it by HTTP basic auth, any user name)."""
    app = web.Application(
        middlewares=[headers, basic_auth(password), csrf_protect],
        client_max_size=1024 * 1024,
    )
    app[CTX_KEY] = WebContext(backend=backend, env=build_env(), title=title)
    app.router.add_routes(ROUTES)
    app.router.add_static("/static", HERE / "static", name="static", append_version=False)
    return app

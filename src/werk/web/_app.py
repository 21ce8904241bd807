"""The aiohttp application: the middlewares, every view's routes and tabs, the static files.

A page is a module of :mod:`werk.web._views` exporting ``ROUTES`` and ``TABS``; adding one
to :data:`VIEWS` puts it in the router and the navigation. A view that also exports
``FEATURE`` (e.g. ``"batches"``) shows its tabs only when the backend has that feature."""

from __future__ import annotations

from aiohttp import web

from werk.web._backend import WebBackend
from werk.web._render import CTX_KEY, HERE, Tabs, WebContext, build_env
from werk.web._security import basic_auth, csrf_protect, headers
from werk.web._views import batches, busy, cron, dashboard, queues, sets, throttles

__all__ = ["ROUTES", "TABS", "TAB_FEATURES", "VIEWS", "build_app"]

VIEWS = (dashboard, queues, busy, sets, batches, cron, throttles)
"""The pages, in the order of the navigation (and of the router)."""
ROUTES: tuple[web.RouteDef, ...] = tuple(route for view in VIEWS for route in view.ROUTES)
TABS: Tabs = tuple(tab for view in VIEWS for tab in view.TABS)
TAB_FEATURES: dict[str, str] = {
    href: view.FEATURE for view in VIEWS if hasattr(view, "FEATURE") for _, href in view.TABS
}


def build_app(
    backend: WebBackend, password: str | None = None, title: str = "werk"
) -> web.Application:
    """The web UI as an aiohttp application over ``backend`` (with ``password``, every
    page asks for it by HTTP basic auth, any user name)."""
    app = web.Application(
        middlewares=[headers, basic_auth(password), csrf_protect],
        client_max_size=1024 * 1024,
    )
    app[CTX_KEY] = WebContext(
        backend=backend,
        env=build_env(TABS),
        tabs=TABS,
        title=title,
        tab_features=TAB_FEATURES,
    )
    app.router.add_routes(ROUTES)
    app.router.add_static("/static", HERE / "static", name="static", append_version=False)
    return app

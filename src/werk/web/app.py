"""The aiohttp application: routes, middlewares, the jinja2 environment and page rendering.

Example::

    app = create_app(backend, password="s3cret")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 7420).start()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from markupsafe import Markup

from werk._version import __version__
from werk.web import format as fmt
from werk.web.backend import Stats, WebBackend
from werk.web.security import CSRF_FIELD, basic_auth, csrf_protect, csrf_token, headers

__all__ = ["TABS", "WebContext", "create_app", "ctx_of", "not_found", "redirect", "render"]

_HERE = Path(__file__).resolve().parent

TABS: tuple[tuple[str, str], ...] = (
    ("Dashboard", "/"),
    ("Queues", "/queues"),
    ("Busy", "/busy"),
    ("Scheduled", "/scheduled"),
    ("Retries", "/retries"),
    ("Dead", "/dead"),
)


@dataclass
class WebContext:
    """What every handler needs: the backend, the template environment, the page title."""

    backend: WebBackend
    env: jinja2.Environment
    title: str = "werk"


_CTX_KEY = web.AppKey("werk.web", WebContext)


def ctx_of(request: web.Request) -> WebContext:
    """The :class:`WebContext` of the application serving ``request``."""
    return request.app[_CTX_KEY]


def _reltime(value: Any, now: float | None = None) -> Markup:
    # A <time> element: "3 minutes ago" to read, the exact UTC time on hover.
    text = fmt.ago(value, now)
    exact = fmt.exact_time(value)
    if not exact:
        return Markup('<span class="muted">-</span>')
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        fmt.iso_time(value), exact, text
    )


def _number(value: int | float) -> Markup:
    # Short form to read, exact count on hover, e.g. 1.2k with title 1,234.
    return Markup('<span class="num" title="{}">{}</span>').format(
        fmt.delimited(value), fmt.compact(value)
    )


def _build_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        # Every value from a job is escaped: a <script> in args is shown as text.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        delimited=fmt.delimited,
        compact=fmt.compact,
        rss=fmt.rss,
        duration=fmt.duration,
        args_preview=fmt.args_preview,
        pretty_json=fmt.pretty_json,
        exact_time=fmt.exact_time,
    )
    env.globals.update(reltime=_reltime, number=_number, version=__version__, tabs=TABS)
    return env


def _active_tab(path: str) -> str:
    for name, href in TABS[1:]:
        if path == href or path.startswith(href + "/"):
            return name
    return "Dashboard" if path == "/" else ""


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """Render ``template`` inside the layout, with the summary bar and the CSRF field."""
    ctx = ctx_of(request)
    stats: Stats = context.pop("stats", None) or await ctx.backend.stats()
    token = csrf_token(request)
    body = ctx.env.get_template(template).render(
        request_path=request.path,
        active_tab=_active_tab(request.path),
        title=ctx.title,
        stats=stats,
        now=ctx.backend.now(),
        csrf_token=token,
        csrf_field=Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token),
        notice=_notice_text(request.query.get("done", ""), request.query.get("n", "")),
        **context,
    )
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


async def not_found(request: web.Request, message: str) -> web.Response:
    """A 404 page inside the layout, saying what was not found."""
    return await render(request, "error.html", status=404, message=message)


_NOTICES = {
    "requeue": "{what} sent back to {their} queue.",
    "discard": "{what} deleted.",
    "kill": "{what} moved to Dead.",
    "deleted": "{what} deleted from the queue.",
    "pause": "Queue paused: FETCH skips it until it is resumed.",
    "resume": "Queue resumed.",
    "remove": "Queue removed with all its jobs.",
    "quiet": "Quiet sent: the worker learns it from its next heartbeat and stops fetching.",
    "terminate": "Terminate sent: the worker learns it from its next heartbeat and shuts down.",
    "gone": "That job is no longer there: it has run, moved or been deleted.",
    "none": "Nothing selected.",
}


def _notice_text(code: str, count: str) -> str:
    # Only fixed sentences can appear: a crafted link cannot make the page say anything else.
    template = _NOTICES.get(code)
    if template is None:
        return ""
    if count == "all":
        what, their = "All jobs", "their"
    elif count.isdigit():
        n = int(count)
        what, their = (f"{n:,} job" if n == 1 else f"{n:,} jobs"), ("its" if n == 1 else "their")
    else:
        what, their = "The job", "its"
    return template.format(what=what, their=their)


def redirect(location: str, done: str = "", count: int | str = "") -> web.HTTPSeeOther:
    """A 303 back to a page after a POST; ``done``/``count`` pick the notice shown there."""
    if done:
        sep = "&" if "?" in location else "?"
        location = f"{location}{sep}done={quote(done)}&n={quote(str(count))}"
    return web.HTTPSeeOther(location)


def create_app(
    backend: WebBackend, password: str | None = None, title: str = "werk"
) -> web.Application:
    """The web UI as an aiohttp application over ``backend``.

    With ``password``, every page asks for it by HTTP basic auth (any user name).

    Example::

        app = create_app(ServerBackend(server), password=None)
        web.run_app(app, host="127.0.0.1", port=7420)   # or start_web() on a running loop
    """
    # Imported here so each view module can import ``render`` from this one.
    from werk.web import views_busy, views_dashboard, views_queues, views_sets

    app = web.Application(
        middlewares=[headers, basic_auth(password), csrf_protect],
        client_max_size=1024 * 1024,
    )
    app[_CTX_KEY] = WebContext(backend=backend, env=_build_env(), title=title)
    views_dashboard.setup(app)
    views_queues.setup(app)
    views_busy.setup(app)
    views_sets.setup(app)
    app.router.add_static("/static", _HERE / "static", name="static", append_version=False)
    return app

"""What every page shares: the jinja2 environment, the layout with its tabs, notices and
redirects after a POST, and the per-application context the handlers read.

The view modules (:mod:`werk.web._views`) import this one; :mod:`werk.web._app` puts the
views together. Nothing here imports a view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from markupsafe import Markup

from werk import _humanize as fmt
from werk._version import __version__
from werk.web._backend import Stats, WebBackend
from werk.web._security import CSRF_FIELD, csrf_token

__all__ = [
    "CTX_KEY",
    "HERE",
    "Tabs",
    "WebContext",
    "build_env",
    "ctx_of",
    "features_of",
    "not_found",
    "redirect",
    "render",
]

HERE = Path(__file__).resolve().parent

Tabs = tuple[tuple[str, str], ...]
"""The navigation: (name, path) pairs, the home page first."""


@dataclass
class WebContext:
    """What every handler needs: the backend, the template environment, the page title;
    ``tab_features`` names the server feature a tab needs (by path), shown only with it."""

    backend: WebBackend
    env: jinja2.Environment
    tabs: Tabs
    title: str = "werk"
    tab_features: dict[str, str] = field(default_factory=dict)

    def visible_tabs(self) -> Tabs:
        """The tabs of the features this backend has."""
        have = features_of(self.backend)
        return tuple(t for t in self.tabs if self.tab_features.get(t[1], "") in have | {""})


CTX_KEY = web.AppKey("werk.web", WebContext)


def features_of(backend: WebBackend) -> frozenset[str]:
    """The backend's optional features (none when it predates :meth:`WebBackend.features`,
    e.g. a backend written for an older werk)."""
    method = getattr(backend, "features", None)
    return frozenset(method()) if callable(method) else frozenset()


def ctx_of(request: web.Request) -> WebContext:
    """The :class:`WebContext` of the application serving ``request``."""
    return request.app[CTX_KEY]


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


def build_env(tabs: Tabs) -> jinja2.Environment:
    """The pages' templates, with every value escaped and the filters they use."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
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
    env.globals.update(reltime=_reltime, number=_number, version=__version__, tabs=tabs)
    return env


def _active_tab(tabs: Tabs, path: str) -> str:
    for name, href in tabs[1:]:
        if path == href or path.startswith(href + "/"):
            return name
    return tabs[0][0] if path == tabs[0][1] else ""


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """Render ``template`` inside the layout, with the summary bar and the CSRF field."""
    ctx = ctx_of(request)
    stats: Stats = context.pop("stats", None) or await ctx.backend.stats()
    token = csrf_token(request)
    body = ctx.env.get_template(template).render(
        request_path=request.path,
        tabs=ctx.visible_tabs(),
        features=features_of(ctx.backend),
        active_tab=_active_tab(ctx.tabs, request.path),
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
    "enqueued": "{what} enqueued now; the schedule and its last run are unchanged.",
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

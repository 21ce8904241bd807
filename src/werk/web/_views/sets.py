"""Scheduled, Retries and Dead: the three sorted sets, page by page, and one job in full.

Every action is a MUTATE on the set, filtered by the jids of the chosen jobs (or unfiltered for
"all"): ``requeue`` (run now: back onto its queue), ``discard`` (delete) and ``kill`` (move to
Dead). A job page shows the whole payload and, for a failed job, its error and backtrace.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from werk.web._backend import MutateCmd, SetName
from werk.web._paging import Pager
from werk.web._render import ctx_of, features_of, redirect, render

__all__ = ["ROUTES", "SETS", "TABS", "SetPage"]


@dataclass(frozen=True)
class SetPage:
    """How a set is presented: the time column, the empty-page text, its actions and their
    labels, and whether rows show the failure."""

    name: SetName
    when_label: str
    empty: str
    actions: tuple[tuple[MutateCmd, str], ...]
    show_error: bool = True

    @property
    def title(self) -> str:
        """The page title: the set's name, capitalised."""
        return self.name.capitalize()


_RETRY: tuple[MutateCmd, str] = ("requeue", "Retry now")
_DELETE: tuple[MutateCmd, str] = ("discard", "Delete")
_KILL: tuple[MutateCmd, str] = ("kill", "Kill")

SETS: dict[str, SetPage] = {
    page.name: page
    for page in (
        SetPage(
            "scheduled",
            "Runs",
            "No scheduled jobs. Jobs pushed with a time in the future wait here.",
            (("requeue", "Enqueue now"), _DELETE, _KILL),
            show_error=False,
        ),
        SetPage(
            "retries",
            "Next retry",
            "No retries. Failed jobs wait here for their next attempt.",
            (_RETRY, _DELETE, _KILL),
        ),
        SetPage(
            "dead",
            "Died",
            "No dead jobs. Jobs that ran out of retries rest here for 180 days.",
            (_RETRY, _DELETE),
        ),
    )
}


def _set_of(request: web.Request) -> SetPage:
    page = SETS.get(request.match_info["set"])
    if page is None:  # pragma: no cover - the route pattern only admits the three names
        raise web.HTTPNotFound()
    return page


def _action_of(page: SetPage, raw: object) -> MutateCmd:
    for cmd, _label in page.actions:
        if raw == cmd:
            return cmd
    allowed = ", ".join(cmd for cmd, _ in page.actions)
    raise web.HTTPBadRequest(text=f"400: on {page.name} the action must be one of {allowed}\n")


async def set_page(request: web.Request) -> web.Response:
    """A page of one set, soonest first."""
    page = _set_of(request)
    backend = ctx_of(request).backend
    pager = Pager.from_query(request.query.get("page"))
    total, entries = await backend.set_entries(page.name, pager.offset, pager.per_page)
    if not entries and total and pager.page > 1:
        # Past the end (jobs moved since the link was made): show the last page instead.
        pager = pager.with_total(total)
        total, entries = await backend.set_entries(page.name, pager.offset, pager.per_page)
    return await render(
        request, "set.html", set=page, entries=entries, pager=pager.with_total(total)
    )


async def set_job_page(request: web.Request) -> web.StreamResponse:
    """One job of a set: the whole payload, its failure and backtrace, and its actions."""
    page = _set_of(request)
    entry = await ctx_of(request).backend.set_entry(page.name, request.match_info["jid"])
    if entry is None:
        raise redirect(f"/{page.name}", "gone")
    backend = ctx_of(request).backend
    lock = await backend.unique_lock(entry.job)
    track = None
    if "tracking" in features_of(backend):
        track = (await backend.tracks([entry.jid])).get(entry.jid)
    return await render(
        request, "job.html", set=page, entry=entry, job=entry.job, lock=lock, track=track
    )


async def set_action(request: web.Request) -> web.StreamResponse:
    """MUTATE the selected jobs (``jid``), one job (``only``) or all of them (``scope=all``)."""
    page = _set_of(request)
    form = await request.post()
    cmd = _action_of(page, form.get("action"))
    back = f"/{page.name}"
    page_no = form.get("page")
    if isinstance(page_no, str) and page_no.isdigit() and page_no != "1":
        back = f"{back}?page={page_no}"
    backend = ctx_of(request).backend
    if form.get("scope") == "all":
        await backend.mutate(cmd, page.name, None)
        raise redirect(back, cmd, "all")
    only = form.get("only")
    jids = [only] if isinstance(only, str) and only else [str(j) for j in form.getall("jid", [])]
    if not jids:
        raise redirect(back, "none")
    await backend.mutate(cmd, page.name, jids)
    raise redirect(back, cmd, len(jids))


async def set_job_action(request: web.Request) -> web.StreamResponse:
    """MUTATE the one job a job page shows, then go back to its set."""
    page = _set_of(request)
    form = await request.post()
    cmd = _action_of(page, form.get("action"))
    await ctx_of(request).backend.mutate(cmd, page.name, [request.match_info["jid"]])
    raise redirect(f"/{page.name}", cmd, 1)


async def morgue(request: web.Request) -> web.StreamResponse:
    """Faktory calls the dead set the morgue; keep its links working."""
    raise web.HTTPMovedPermanently("/dead" + request.path_qs[len("/morgue") :])


TABS = tuple((page.title, f"/{page.name}") for page in SETS.values())
_SET = f"/{{set:{'|'.join(SETS)}}}"
ROUTES: tuple[web.RouteDef, ...] = (
    web.get(_SET, set_page, name="set"),
    web.post(_SET, set_action, name="set_action"),
    web.get(_SET + "/{jid:.+}", set_job_page, name="set_job"),
    web.post(_SET + "/{jid:.+}", set_job_action, name="set_job_action"),
    web.get("/morgue", morgue),
    web.get("/morgue/{jid}", morgue),
)

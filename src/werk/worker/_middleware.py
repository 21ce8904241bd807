"""Middleware: hooks around pushing (client side) and running (worker side) a job.

Subclass :class:`Middleware`, override the hooks you need (each one is a documented no-op)
and give the instance to the app. A hook that raises is logged and skipped: it never stops
a push, a job or the worker. :class:`Hooks` keeps the overridden hooks of an app's
middleware and calls them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werk._job import Job
from werk.worker._context import JobContext

if TYPE_CHECKING:
    # A cycle for the type checker only, and by design: the worker calls these hooks with
    # itself, and a worker's app holds its middleware.
    from werk.worker._worker import Worker

__all__ = ["HookTuple", "Hooks", "Middleware", "call_each"]

log = logging.getLogger("werk.worker.middleware")


class Middleware:
    """Base class of middleware; every hook does nothing until overridden.

    Client side (in the process that pushes, including jobs pushing jobs):
    :meth:`before_push`, :meth:`after_push`. Worker side (in the worker process, around
    each job, whatever the executor): :meth:`before_process`, :meth:`after_process`,
    :meth:`on_failure`; in each fetch slot: :meth:`after_fetch`; and once per worker:
    :meth:`on_startup`, :meth:`on_quiet`, :meth:`on_shutdown`.

    Example::

        class Audit(werk.Middleware):
            def on_failure(self, ctx, error, duration):
                audit.record(ctx.jid, repr(error))
    """

    def before_push(self, job: Job) -> None:
        """Called before a job is sent; may change it (``custom``, ``queue`` ...)."""

    def after_push(self, job: Job) -> None:
        """Called after the server accepted a job."""

    def before_process(self, ctx: JobContext) -> None:
        """Called before a job's handler runs (``werk.current_job()`` is set)."""

    def after_process(self, ctx: JobContext, duration: float) -> None:
        """Called after a handler returned normally (before the ACK is sent)."""

    def on_failure(self, ctx: JobContext, error: BaseException, duration: float) -> None:
        """Called after a handler raised (before the FAIL is sent).

        ``error`` is the exception; with the process executor it is a
        :class:`werk.worker.RemoteJobError` carrying the child's error type and message.
        """

    def after_fetch(self, duration: float, found: bool) -> None:
        """Called in a fetch slot when a FETCH's reply arrives: ``duration`` is its round
        trip in seconds (the server holds a FETCH up to 2 s while no job is there),
        ``found`` whether it brought a job. Not called when no middleware overrides it.
        """

    def on_startup(self, worker: Worker) -> None:
        """Called once when a worker starts, before it fetches anything."""

    def on_quiet(self, worker: Worker) -> None:
        """Called when a worker goes quiet (TSTP or the web UI): it stops fetching."""

    def on_shutdown(self, worker: Worker) -> None:
        """Called when a worker begins to terminate (TERM/INT or the web UI)."""


_HOOKS = (
    "before_push",
    "after_push",
    "before_process",
    "after_process",
    "on_failure",
    "after_fetch",
    "on_startup",
    "on_quiet",
    "on_shutdown",
)


HookTuple = tuple[Callable[..., Any], ...]
"""The bound methods of one hook, in middleware order."""

# The per-job hooks and how many arguments each takes.
_ARITY = {
    "before_push": 1,
    "after_push": 1,
    "before_process": 1,
    "after_process": 2,
    "on_failure": 3,
    "after_fetch": 2,
}


class Hooks:
    """The overridden hooks of a list of middleware, called in order, errors logged.

    Each per-job hook is an attribute holding one function that calls the bound methods of
    only the middleware that override it, or ``None`` when none does (``hooks.before_process``
    ...), rebuilt when middleware is added: a caller tests it for None and calls it. An app
    without middleware pays one attribute load per hook per job, and one with a single
    middleware one call more than the hook's own.
    """

    def __init__(self, middleware: Iterable[Middleware] = ()) -> None:
        self.middleware: list[Middleware] = list(middleware)
        self.before_push: Callable[[Job], None] | None = None
        self.after_push: Callable[[Job], None] | None = None
        self.before_process: Callable[[JobContext], None] | None = None
        self.after_process: Callable[[JobContext, float], None] | None = None
        self.on_failure: Callable[[JobContext, BaseException, float], None] | None = None
        self.after_fetch: Callable[[float, bool], None] | None = None
        self.bound: dict[str, HookTuple] = {}
        """Every hook's bound methods, by hook name."""
        self.wanted: frozenset[str] = frozenset()
        """The hooks some middleware overrides."""
        self._rebuild()

    def add(self, middleware: Middleware) -> None:
        """Append one middleware."""
        self.middleware.append(middleware)
        self._rebuild()

    def _rebuild(self) -> None:
        for name in _HOOKS:
            base = getattr(Middleware, name)
            self.bound[name] = tuple(
                getattr(m, name)
                for m in self.middleware
                if getattr(type(m), name, base) is not base
            )
        for name, arity in _ARITY.items():
            setattr(self, name, _caller(self.bound[name], arity))
        self.wanted = frozenset(name for name in _HOOKS if self.bound[name])

    def has(self, name: str) -> bool:
        """True when some middleware overrides hook ``name``."""
        return name in self.wanted

    def call(self, name: str, *args: Any) -> None:
        """Call hook ``name`` on every middleware; log (never raise) what they raise."""
        hooks = self.bound[name]
        if hooks:
            call_each(hooks, *args)


def call_each(hooks: HookTuple, *args: Any) -> None:
    """Call each of ``hooks`` with ``args``; log (never raise) what they raise."""
    for hook in hooks:
        try:
            hook(*args)
        except Exception:
            _raised(hook)


def _raised(hook: Callable[..., Any]) -> None:
    owner = getattr(hook, "__self__", hook)
    name = getattr(hook, "__name__", "hook")
    log.exception("middleware %s.%s raised; ignored", type(owner).__name__, name)


def _caller(hooks: HookTuple, arity: int) -> Callable[..., None] | None:
    # One middleware (the usual case) gets a function of the hook's own arity around its one
    # method: per job, that saves call_each's packing of the arguments and its loop.
    if not hooks:
        return None
    if len(hooks) > 1:
        return functools.partial(call_each, hooks)
    hook = hooks[0]
    if arity == 1:

        def call1(a: Any) -> None:
            try:
                hook(a)
            except Exception:
                _raised(hook)

        return call1
    if arity == 2:

        def call2(a: Any, b: Any) -> None:
            try:
                hook(a, b)
            except Exception:
                _raised(hook)

        return call2

    def call3(a: Any, b: Any, c: Any) -> None:
        try:
            hook(a, b, c)
        except Exception:
            _raised(hook)

    return call3

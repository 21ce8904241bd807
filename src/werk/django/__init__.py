"""Django integration (the ``django`` extra: ``pip install 'werk[django]'``).

Run the worker with the project's settings in the environment, or, with ``"werk.django"``
in ``INSTALLED_APPS``, through ``manage.py`` (the options are ``werk worker``'s)::

    $ DJANGO_SETTINGS_MODULE=mysite.settings werk worker mysite.jobs
    $ python manage.py werk_worker mysite.jobs -c 10

With ``DJANGO_SETTINGS_MODULE`` set, ``werk worker`` (and each child process of
``--executor process``) prepares the project before it runs a job (:func:`load_project_app`):

1. :func:`setup`: ``django.setup()``, so settings are loaded and apps are ready before the
   app's module (and the models it imports) is imported;
2. :func:`autodiscover`: the ``jobs`` module of every installed app that has one is
   imported, so that the jobs declared there are registered on the app;
3. :func:`manage_connections`: every job runs between two ``close_old_connections()``, as
   a request does in Django: a connection past ``CONN_MAX_AGE`` (by default: every one), in
   error or left outside autocommit is closed after the job, and a persistent one is
   reused by the next job.

The App lives in one module of the project (``mysite/jobs.py``: ``app = werk.App()``) and
each Django app declares its jobs in its own ``jobs.py``::

    # shop/jobs.py
    from mysite.jobs import app
    from shop.models import Order

    @app.job
    def ship(order_id: int) -> None:
        Order.objects.filter(pk=order_id).update(shipped=True)

Connections belong to threads, so the closing happens where the job's code runs, not in
middleware (whose hooks run on the executor's thread): a sync job's handler closes the
connections of its own thread (a slot thread, the asyncio executor's pool thread or a
child's). An async job must reach the ORM the way Django requires, through its async
methods (``await Order.objects.aget(...)``) or ``sync_to_async``; each async job runs in
its own ``asgiref`` thread-sensitive context, as Django's ASGI handler runs each request,
so its queries run on a thread of its own, whose connections are closed when it ends
(persistent connections therefore serve sync jobs only, as they serve WSGI requests only).

Building a :class:`~werk.Worker` in code (a management command, say), call the three
steps yourself::

    import werk.django

    werk.django.setup()
    from mysite.jobs import app
    werk.django.autodiscover()
    werk.django.manage_connections(app)
    werk.Worker(app).run()
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from typing import Any

try:
    import django
    from asgiref.sync import ThreadSensitiveContext, sync_to_async
    from django.db import close_old_connections, connections
    from django.utils.module_loading import autodiscover_modules
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("werk.django needs Django: pip install 'werk[django]'") from exc

from werk._errors import ConfigurationError
from werk.worker import App

__all__ = [
    "JOBS_MODULE",
    "autodiscover",
    "load_project_app",
    "manage_connections",
    "settings_module",
    "setup",
]

JOBS_MODULE = "jobs"
"""The module of each installed app that :func:`autodiscover` imports."""

_MANAGED = "__werk_django__"  # marks a handler manage_connections already wrapped


def settings_module() -> str | None:
    """The project's settings module (``DJANGO_SETTINGS_MODULE``), or None outside Django.

    Example::

        if werk.django.settings_module():
            werk.django.setup()
    """
    return os.environ.get("DJANGO_SETTINGS_MODULE") or None


def setup() -> None:
    """Load the settings and populate the app registry (``django.setup()``), once.

    Example::

        werk.django.setup()   # settings from DJANGO_SETTINGS_MODULE
    """
    from django.apps import apps

    if apps.ready:
        return
    if settings_module() is None:
        raise ConfigurationError("werk.django.setup() needs DJANGO_SETTINGS_MODULE")
    try:
        django.setup()
    except ImportError as exc:
        raise ConfigurationError(f"cannot set up Django ({settings_module()}): {exc}") from exc


def autodiscover(module: str = JOBS_MODULE) -> None:
    """Import ``module`` (default ``jobs``) of every installed app that has one.

    Example::

        werk.django.autodiscover()   # shop.jobs, billing.jobs, ...
    """
    autodiscover_modules(module)


def manage_connections(app: App) -> None:
    """Make every job of ``app`` close old database connections before and after it runs.

    The app's registry gets wrapped handlers (the job functions themselves, called or
    pushed from your code, are unchanged); calling it again changes nothing. Call it
    after every job is registered.

    Example::

        werk.django.manage_connections(app)
    """
    for jobtype, fn in list(app.jobs.items()):
        if getattr(fn.func, _MANAGED, False):
            continue
        managed = copy.copy(fn)
        managed.func = _async_handler(fn.func) if fn.is_async else _sync_handler(fn.func)
        app.jobs[jobtype] = managed


def load_project_app(load: Callable[[], App]) -> App:
    """Set Django up, call ``load`` (which imports the app), discover the apps' jobs and
    manage their connections: what ``werk worker`` does in a Django project.

    Example::

        app = werk.django.load_project_app(lambda: load_app("mysite.jobs"))
    """
    setup()
    app = load()
    autodiscover()
    manage_connections(app)
    return app


def _sync_handler(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def handler(*args: Any) -> Any:
        close_old_connections()
        try:
            return func(*args)
        finally:
            close_old_connections()

    setattr(handler, _MANAGED, True)
    return handler


def _async_handler(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def handler(*args: Any) -> Any:
        async with ThreadSensitiveContext():
            try:
                return await func(*args)
            finally:
                # The context's thread ends with it: none of its connections is kept.
                await sync_to_async(connections.close_all)()

    setattr(handler, _MANAGED, True)
    return handler

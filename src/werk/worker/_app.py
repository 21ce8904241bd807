"""Declaring jobs: :class:`App` (the registry of job types, and the way to push them) and
:class:`JobFunction` (a function registered as a job type).

There is no module-level state: an app object holds the job functions, the middleware and
the server URL used for pushing, and a :class:`~werk.Worker` is given the app to run.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from werk._errors import ConfigurationError, JobArgumentError, JobValidationError
from werk._job import MAX_RESERVE_FOR, Job, When, enterprise_custom
from werk._protocol.jsonc import dumps, loads
from werk.client import Client
from werk.client._batch import current_bid, joined
from werk.client._failure import MAX_BACKTRACE
from werk.worker._clients import ThreadClients
from werk.worker._context import TIMEOUT_FIELD, job_timeout
from werk.worker._middleware import Hooks, Middleware
from werk.worker._run import JobRun

__all__ = ["App", "JobFunction", "JobOptions"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_BACKTRACE = 30
DEFAULT_RESERVE_FOR = 1800  # the server's, for a job without reserve_for
TIMEOUT_MARGIN = 30  # seconds a reservation outlasts a timeout: the FAIL's way back
MIN_TIMED_RESERVE = 60


Q = ParamSpec("Q")
T = TypeVar("T")


class JobDecorator(Protocol):
    """What ``@app.job(...)`` with options returns: a decorator keeping the signature."""

    def __call__(self, func: Callable[Q, T], /) -> JobFunction[Q, T]: ...


@dataclass(frozen=True)
class JobOptions:
    """How jobs of one type are pushed (see :meth:`App.job`)."""

    jobtype: str
    queue: str = "default"
    retry: int | None = None
    reserve_for: int | None = None
    backtrace: int | None = None
    custom: Mapping[str, Any] | None = None
    timeout: float | None = None
    unique_for: float | timedelta | None = None
    unique_until: str | None = None
    expires_in: float | timedelta | None = None
    expires_at: datetime | str | None = None


_JOB_OPTIONS = frozenset(
    (
        "jobtype",
        "queue",
        "retry",
        "reserve_for",
        "backtrace",
        "custom",
        "timeout",
        "unique_for",
        "unique_until",
        "expires_in",
        "expires_at",
    )
)


def _timed(options: JobOptions) -> tuple[int | None, dict[str, Any] | None]:
    """The ``reserve_for`` and ``custom`` that jobs pushed with ``options`` carry: the
    timeout goes into ``custom`` (``werk_timeout``), and a reservation shorter than the
    timeout plus a margin is raised to fit (with a warning when it was set explicitly)."""
    timeout = options.timeout
    custom = dict(options.custom) if options.custom else None
    enterprise = (options.unique_for, options.unique_until, options.expires_in, options.expires_at)
    if enterprise != (None, None, None, None):
        custom = enterprise_custom(custom, *enterprise)
    if timeout is None:
        return options.reserve_for, custom
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout <= MAX_RESERVE_FOR - TIMEOUT_MARGIN
    ):
        raise ConfigurationError(
            f"{options.jobtype}: timeout must be a positive number of seconds up to "
            f"{MAX_RESERVE_FOR - TIMEOUT_MARGIN}, got {timeout!r}"
        )
    needed = max(MIN_TIMED_RESERVE, math.ceil(timeout) + TIMEOUT_MARGIN)
    reserve_for = options.reserve_for
    if reserve_for is None:
        if needed > DEFAULT_RESERVE_FOR:
            reserve_for = needed
    elif reserve_for < needed:
        warnings.warn(
            f"{options.jobtype}: reserve_for={reserve_for} is shorter than timeout={timeout:g} "
            f"plus {TIMEOUT_MARGIN} s; raised to {needed}",
            stacklevel=4,
        )
        reserve_for = needed
    return reserve_for, {**(custom or {}), TIMEOUT_FIELD: timeout}


class JobFunction(Generic[P, R]):
    """A function registered as a job type; call it locally or push it to Faktory.

    Arguments are checked against the function's signature when pushing (and by the type
    checker, through ``ParamSpec``); keyword arguments are turned into positions, since a
    Faktory job carries a JSON array. Keyword-only parameters cannot be pushed.

    Example::

        @app.job
        async def notify(user_id: int, text: str) -> None: ...

        jid = notify.push(7, text="hi")          # args [7, "hi"]
        notify.push_at(datetime(2030, 1, 1, tzinfo=timezone.utc), 7, "happy new year")
    """

    def __init__(self, app: App, func: Callable[P, R], options: JobOptions) -> None:
        self.app = app
        self.func = func
        self.options = options
        self.is_async = inspect.iscoroutinefunction(func)
        self._reserve_for, self._custom = _timed(options)
        self._signature: inspect.Signature | None = None
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", options.jobtype)
        self.__qualname__ = getattr(func, "__qualname__", self.__name__)
        self.__module__ = getattr(func, "__module__", __name__)
        self.__wrapped__ = func

    @property
    def jobtype(self) -> str:
        """The job type name sent to Faktory."""
        return self.options.jobtype

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now (no server, no JSON)."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<JobFunction {self.jobtype} queue={self.options.queue!r}>"

    def _positional(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        if not kwargs:
            return list(args)
        if self._signature is None:
            self._signature = inspect.signature(self.func)
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise JobArgumentError(f"{self.jobtype}: {exc}") from None
        if bound.kwargs:
            raise JobArgumentError(
                f"{self.jobtype}: keyword-only arguments cannot be sent to Faktory "
                f"(got {sorted(bound.kwargs)})"
            )
        return list(bound.args)

    def to_job(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """The :class:`~werk.Job` that :meth:`push` would send (validated, not sent)."""
        return self._job(None, args, kwargs)

    def _job(self, at: When | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Job:
        o = self.options
        return Job(
            o.jobtype,
            self._positional(args, kwargs),
            queue=o.queue,
            retry=o.retry,
            reserve_for=self._reserve_for,
            backtrace=o.backtrace,
            custom=self._custom,
            at=at,
        )

    def push(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue the job now; returns its jid."""
        return self.app.push_job(self._job(None, args, kwargs))

    def push_at(self, when: When, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue the job to run at ``when`` (aware datetime, timedelta or RFC3339 string)."""
        return self.app.push_job(self._job(when, args, kwargs))

    def push_in(self, delay: float | timedelta, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue the job to run after ``delay`` (seconds or a timedelta)."""
        if not isinstance(delay, timedelta):
            if not isinstance(delay, (int, float)) or isinstance(delay, bool):
                raise JobValidationError(
                    "at", f"push_in takes seconds or a timedelta, got {type(delay).__name__}"
                )
            delay = timedelta(seconds=delay)
        return self.app.push_job(self._job(delay, args, kwargs))

    def with_options(
        self,
        *,
        queue: str | None = None,
        retry: int | None = None,
        reserve_for: int | None = None,
        backtrace: int | None = None,
        custom: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        unique_for: float | timedelta | None = None,
        unique_until: str | None = None,
        expires_in: float | timedelta | None = None,
        expires_at: datetime | str | None = None,
    ) -> JobFunction[P, R]:
        """A copy with other push options (the registered job type is unchanged).

        Example::

            resize.with_options(queue="urgent", retry=0).push(42)
            resize.with_options(timeout=300).push(43)   # this push's time limit
            resize.with_options(unique_for=600, expires_in=60).push(44)
        """
        changes: dict[str, Any] = {
            k: v
            for k, v in {
                "queue": queue,
                "retry": retry,
                "reserve_for": reserve_for,
                "backtrace": backtrace,
                "custom": custom,
                "timeout": timeout,
                "unique_for": unique_for,
                "unique_until": unique_until,
                "expires_in": expires_in,
                "expires_at": expires_at,
            }.items()
            if v is not None
        }
        return JobFunction(self.app, self.func, replace(self.options, **changes))


class App:
    """The registry of job types of an application, and its producer configuration.

    ``url`` (default: ``FAKTORY_PROVIDER`` / ``FAKTORY_URL`` / ``tcp://localhost:7419``) and
    ``password`` are used by pushes (``fn.push(...)``) made through this app. ``middleware``
    wraps both pushes and job runs. With ``eager=True`` (for tests) a push runs the job at
    once in the calling thread, after a JSON round trip exactly as in production, and
    exceptions propagate to the caller. ``import_path`` (``"package.module:app"``) tells the
    process executor how its children import this app; by default it is found among the
    loaded modules.

    Example::

        app = werk.App(middleware=[Timing()])

        @app.job(retry=3)
        def charge(order_id: str) -> None: ...

        def test_charge() -> None:
            test_app = werk.App(eager=True)
            ...
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        password: str | None = None,
        middleware: Iterable[Middleware] = (),
        eager: bool = False,
        default_backtrace: int = DEFAULT_BACKTRACE,
        import_path: str | None = None,
    ) -> None:
        if (
            not isinstance(default_backtrace, int)
            or isinstance(default_backtrace, bool)
            or not 0 <= default_backtrace <= MAX_BACKTRACE
        ):
            raise ConfigurationError(
                f"default_backtrace must be an int from 0 to {MAX_BACKTRACE}, "
                f"got {default_backtrace!r}"
            )
        self.url = url
        self.import_path = import_path
        self.password = password
        self.eager = eager
        self.default_backtrace = default_backtrace
        self.hooks = Hooks(middleware)
        self.jobs: dict[str, JobFunction[Any, Any]] = {}
        self._clients = ThreadClients(lambda: Client(self.url, password=self.password))

    # -- registry ---------------------------------------------------------------------------

    @overload
    def job(self, func: Callable[P, R], /) -> JobFunction[P, R]: ...

    @overload
    def job(
        self,
        /,
        *,
        jobtype: str | None = None,
        queue: str = "default",
        retry: int | None = None,
        reserve_for: int | None = None,
        backtrace: int | None = None,
        custom: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        unique_for: float | timedelta | None = None,
        unique_until: str | None = None,
        expires_in: float | timedelta | None = None,
        expires_at: datetime | str | None = None,
    ) -> JobDecorator: ...

    def job(
        self, func: Callable[..., Any] | None = None, /, **options: Any
    ) -> JobFunction[Any, Any] | JobDecorator:
        """Register a sync or async function as a job type (decorator, with or without options).

        The options are ``jobtype`` (default: the function's name), ``queue``, ``retry``,
        ``reserve_for``, ``backtrace`` and ``custom``, as on :class:`~werk.Job`, and
        ``timeout``: the job's time limit in seconds, carried in its ``custom`` hash as
        ``werk_timeout`` so that every werk worker enforces it (see the README's
        "Timeouts"). A ``reserve_for`` shorter than ``timeout`` + 30 s is raised to fit
        (at least 60 s), with a warning. ``unique_for``, ``unique_until``, ``expires_in``
        and ``expires_at`` make every push of it a unique or expiring job, as on
        :class:`~werk.Job` (``expires_in`` counts from each push). They are validated now,
        as :class:`~werk.Job` would, so a bad queue name fails at import time.

        Example::

            @app.job
            def send_email(to: str) -> None: ...

            @app.job(jobtype="Resize", queue="images", retry=5, backtrace=10)
            async def resize(image_id: int) -> None: ...

            @app.job(timeout=30)
            def report(day: str) -> None: ...

            @app.job(unique_for=timedelta(hours=1), expires_in=3600)
            def refresh(account_id: int) -> None: ...
        """
        unknown = ", ".join(sorted(options.keys() - _JOB_OPTIONS))
        if unknown:
            known = ", ".join(sorted(_JOB_OPTIONS))
            raise ConfigurationError(f"@app.job takes the options {known}, not {unknown}")

        def register(f: Callable[Q, T], /) -> JobFunction[Q, T]:
            if not callable(f):
                raise ConfigurationError(f"@app.job registers a function, not {f!r}")
            custom = options.get("custom")
            settings = JobOptions(
                **{
                    **options,
                    "jobtype": options.get("jobtype") or f.__name__,
                    "custom": dict(custom) if custom else None,
                }
            )
            fn = JobFunction(self, f, settings)
            # Fail at import time rather than at the first push.
            Job(
                settings.jobtype,
                queue=settings.queue,
                retry=settings.retry,
                reserve_for=fn._reserve_for,
                backtrace=settings.backtrace,
                custom=fn._custom,
            )
            return self.register(fn)

        if func is not None:
            return register(func)
        return register

    def register(self, fn: JobFunction[P, R]) -> JobFunction[P, R]:
        """Add a :class:`JobFunction` under its job type (rarely needed; see :meth:`job`)."""
        if fn.jobtype in self.jobs and self.jobs[fn.jobtype].func is not fn.func:
            raise ConfigurationError(f"job type {fn.jobtype!r} is already registered")
        self.jobs[fn.jobtype] = fn
        return fn

    def lookup(self, jobtype: str) -> JobFunction[Any, Any] | None:
        """The job function registered for ``jobtype``, or ``None``."""
        return self.jobs.get(jobtype)

    def add_middleware(self, middleware: Middleware) -> None:
        """Append a middleware (affects pushes and workers created afterwards too)."""
        self.hooks.add(middleware)

    # -- pushing ----------------------------------------------------------------------------

    def client(self) -> Client:
        """This thread's connection to the app's server, for pushes and any other command.

        The rule (the same for :meth:`werk.Worker.client`): one connection per thread,
        opened on first use and reused by every later call on that thread. Closing it is
        allowed (the next command reconnects); :meth:`close` closes them all.

        Example::

            app.client().queue_pause("mail")
        """
        return self._clients.get()

    def push_job(self, job: Job) -> str:
        """Push a :class:`~werk.Job` through this app's middleware; returns the jid.

        Inside a batch block (``with client.batch(...)``) the job joins that batch (a copy
        of it gets ``custom.bid``), unless it already names a batch of its own.

        Example::

            app.push_job(werk.Job("Resize", args=[42]))   # any job type, even unregistered
        """
        bid = current_bid()
        if bid is not None and not (job.custom and "bid" in job.custom):
            job = joined(job, bid)
        hooks = self.hooks
        if hooks.before_push is not None:
            hooks.before_push(job)
        if self.eager:
            self.run_eagerly(job)
        else:
            self.client().push(job)
        if hooks.after_push is not None:
            hooks.after_push(job)
        return job.jid

    def run_eagerly(self, job: Job) -> Any:
        """Run ``job`` here, after a JSON round trip, with its context and middleware.

        Returns the handler's result; its exception propagates, and a job type with no
        handler raises :class:`~werk.UnknownJobTypeError`. Used by ``eager=True``. A job's
        timeout sets its context's ``deadline`` (for ``check_deadline()``) but stops nothing.
        """
        wire = Job.from_dict(loads(dumps(job.to_dict())))
        run = JobRun(wire, self.jobs, self.hooks, propagate=True)
        run.ctx.connect = self.client  # batches and tracking, on this app's connection
        timeout = job_timeout(wire.custom, None)
        if timeout is not None:  # for check_deadline(); nothing stops an eager run
            run.ctx.timeout = timeout
            run.ctx.deadline = run.started + timeout
        handler = run.fn
        if handler is None:
            assert run.error is not None
            raise run.error
        if not handler.is_async:
            with run:
                result = handler.func(*wire.args)
            return result

        async def run_async() -> Any:
            with run:
                value = await handler.func(*wire.args)
            return value

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run_async())
        # Called from inside an event loop: run the coroutine on a loop of its own.
        results: list[Any] = []
        errors: list[BaseException] = []

        def run_in_thread() -> None:
            try:
                results.append(asyncio.run(run_async()))
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=run_in_thread, name="werk-eager")
        t.start()
        t.join()
        if errors:
            raise errors[0]
        return results[0]

    def close(self) -> None:
        """Close the connections :meth:`client` opened (on every thread)."""
        self._clients.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

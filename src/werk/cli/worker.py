"""``werk worker MODULE[:APP]``: run the jobs of an app.

Example::

    $ werk worker myproject.jobs -c 20 -q critical,3 -q default -l web-3 --executor thread
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from werk._errors import ConfigurationError
from werk.worker import App
from werk.worker._queues import parse_queue_arg

__all__ = ["add_worker_command", "configure_logging", "load_app", "serve_metrics"]

_EPILOG = """\
examples:
  werk worker myproject.jobs                  # the App named "app" in myproject/jobs.py
  werk worker myproject.jobs:tasks -c 50      # the App named "tasks", 50 slots
  werk worker jobs -q critical,3 -q default,1 # weighted: critical tried first 3 times in 4
  werk worker jobs -q critical -q default     # strict: critical always first
  werk worker jobs --executor process -c 4    # CPU-bound jobs, one child process per slot
  werk worker jobs --metrics-port 9191        # Prometheus metrics on :9191/metrics
  werk worker jobs --log-format json          # one JSON object per log line
  werk worker jobs --reload                   # development: restart when a .py file changes
  DJANGO_SETTINGS_MODULE=mysite.settings werk worker mysite.jobs
                                              # Django: setup, each app's jobs.py, connections

signals: TERM/INT stop gracefully (a second one stops at once): jobs still running after
--shutdown-timeout are FAILed (so they are retried) and the process exits without waiting
for them. TSTP stops fetching (quiet), TTIN logs the stack of every thread.
The server is FAKTORY_URL (or FAKTORY_PROVIDER), else tcp://localhost:7419.
"""


def load_app(spec: str) -> App:
    """Import ``module[:attribute]`` and return the :class:`~werk.App` it names.

    Without an attribute, the module's ``app`` is used, or its only App. The current
    directory is importable, as with ``python -m``.

    Example::

        app = load_app("myproject.jobs:app")
    """
    modname, _, attr = spec.partition(":")
    _importable_cwd()
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        if exc.name and modname.startswith(exc.name):
            raise ConfigurationError(f"cannot import {modname!r}: {exc}") from exc
        raise
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, App):
            raise ConfigurationError(f"{modname}:{attr} is not a werk.App (got {app!r})")
        return app
    default = getattr(module, "app", None)
    if isinstance(default, App):
        return default
    apps = [name for name, value in vars(module).items() if isinstance(value, App)]
    if len(apps) == 1:
        found: App = getattr(module, apps[0])
        return found
    if not apps:
        raise ConfigurationError(f"no werk.App found in {modname}; write {modname}:NAME")
    raise ConfigurationError(
        f"several werk.App objects in {modname} ({', '.join(apps)}); write {modname}:NAME"
    )


def _load(spec: str) -> App:
    # In a Django project, Django is set up before the app's module is imported.
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return load_app(spec)
    _importable_cwd()
    try:
        from werk.django import load_project_app
    except ImportError as exc:
        raise ConfigurationError(f"DJANGO_SETTINGS_MODULE is set: {exc}") from exc
    return load_project_app(lambda: load_app(spec))


def _importable_cwd() -> None:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def configure_logging(level: str, fmt: str = "human") -> None:
    """Log to stderr: lines with time, level and logger name (``human``), or one JSON
    object per line (``json``, see :class:`werk._jsonlog.JsonFormatter`)."""
    if fmt == "json":
        from werk._jsonlog import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
        return
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def serve_metrics(app: App, port: int, bind: str = "0.0.0.0") -> None:
    """Count the app's jobs (:class:`werk.metrics.PrometheusMiddleware`) and serve them as
    Prometheus metrics on ``http://bind:port/metrics``.

    Example::

        serve_metrics(app, 9191)
    """
    try:
        from prometheus_client import start_http_server

        from werk.metrics import PrometheusMiddleware
    except ImportError as exc:
        raise ConfigurationError(
            f"--metrics-port needs prometheus_client: pip install 'werk[metrics]' ({exc})"
        ) from exc
    app.add_middleware(PrometheusMiddleware(app))
    try:
        start_http_server(port, addr=bind)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {bind}:{port}: {exc}") from exc


def _run(args: argparse.Namespace) -> int:
    from werk.worker import Worker

    configure_logging(args.log_level, args.log_format)
    if args.reload:
        from werk.cli._reload import child_argv, run_with_reload

        try:
            return run_with_reload(child_argv(sys.argv[1:]), args.reload_dir or [os.getcwd()])
        except ConfigurationError as exc:
            print(f"werk worker: {exc}", file=sys.stderr)
            return 2
    try:
        app = _load(args.app)
        if args.metrics_port is not None:
            serve_metrics(app, args.metrics_port, args.metrics_bind)
        queues = [parse_queue_arg(q) for q in args.queue] if args.queue else None
        strategy = args.strategy
        if strategy is None:
            weighted = any("," in q for q in args.queue or ())
            strategy = "weighted" if weighted else "strict"
        worker = Worker(
            app,
            args.url,
            concurrency=args.concurrency,
            queues=queues,
            queue_strategy=strategy,
            labels=args.label or (),
            shutdown_timeout=args.shutdown_timeout,
            executor=args.executor,
            wid=args.wid,
            job_timeout=args.job_timeout,
        )
    except ConfigurationError as exc:
        print(f"werk worker: {exc}", file=sys.stderr)
        return 2
    worker.run()
    code = 1 if worker.error is not None else 0
    if worker.abandoned or worker.abandoned_threads:
        # The shutdown deadline or a job's timeout FAILed jobs whose handlers may still run:
        # sync ones on threads that Python cannot stop, and threads they started, which a
        # normal exit would wait for. Those jobs are due to be retried, so none may run on:
        # end the process now.
        logging.shutdown()  # flushes the log handlers
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def add_worker_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``werk worker``."""
    p = sub.add_parser(
        "worker",
        help="run the jobs of an app",
        description="Fetch jobs from Faktory and run them with the job functions of an App.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("app", metavar="MODULE[:APP]", help="where the werk.App is, e.g. myapp.jobs:app")
    p.add_argument(
        "-c",
        "--concurrency",
        type=int,
        default=20,
        metavar="N",
        help="jobs run at the same time (default 20)",
    )
    p.add_argument(
        "-q",
        "--queue",
        action="append",
        metavar="QUEUE[,WEIGHT]",
        help="a queue to work, repeatable, in priority order (default: default)",
    )
    p.add_argument(
        "--strategy",
        choices=("strict", "weighted", "random"),
        default=None,
        help="queue order: strict priority, weighted, or random "
        "(default: weighted when a weight is given, else strict)",
    )
    p.add_argument(
        "-l",
        "--label",
        action="append",
        metavar="LABEL",
        help="a label shown in the web UI, repeatable",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=25.0,
        metavar="S",
        help="seconds running jobs get to finish on TERM before they are FAILed (default 25)",
    )
    p.add_argument(
        "--job-timeout",
        type=float,
        default=None,
        metavar="S",
        help="time limit of a job that sets none (custom.werk_timeout); past it the job is "
        "FAILed with JobTimeout and stopped (default: no limit)",
    )
    p.add_argument(
        "--executor",
        choices=("thread", "asyncio", "process"),
        default="thread",
        help="thread (default): sync jobs on threads, async jobs on an event loop; "
        "asyncio: one event loop; process: a child process per slot",
    )
    p.add_argument("--url", default=None, help="server URL (default: FAKTORY_URL)")
    p.add_argument("--wid", default=None, help="worker id (default: random)")
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level (default INFO: a line per job)",
    )
    p.add_argument(
        "--log-format",
        choices=("human", "json"),
        default="human",
        help="human (default): text lines; json: one JSON object per line with time, level, "
        "logger, message and the job's jid, jobtype, queue, duration, errtype",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on http://BIND:PORT/metrics (needs werk[metrics])",
    )
    p.add_argument(
        "--metrics-bind",
        default="0.0.0.0",
        metavar="ADDR",
        help="the address of --metrics-port (default 0.0.0.0)",
    )
    p.add_argument(
        "--reload",
        action="store_true",
        help="development: run the worker as a child and restart it gracefully when a .py "
        "file changes (needs werk[reload])",
    )
    p.add_argument(
        "--reload-dir",
        action="append",
        metavar="DIR",
        help="a directory --reload watches, repeatable (default: the current directory)",
    )
    p.set_defaults(func=_run)

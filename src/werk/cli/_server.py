"""``werk server``: run the embedded Faktory-compatible server.

The web UI needs the ``web`` extra (``pip install 'werk[web]'``); without it the server
runs alone and says once how to get the pages. If the default web port is taken the
server runs without pages (a warning says so); an explicit ``--web-bind`` that cannot be
bound stops the start-up.

The data directory defaults to ``$WERK_DATA``, else ``$XDG_DATA_HOME/werk``
(``~/.local/share/werk``). SIGTERM and SIGINT stop the server gracefully. SIGHUP makes
the server read ``--config-dir`` again: a bad configuration is logged (file and line) and
the previous one stays in force.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from werk._errors import FaktoryError
from werk._protocol.command_lines import MAX_COMMAND_LINE
from werk.server._config import DEFAULT_BIND, ServerConfig, default_data_dir, split_bind
from werk.server._extension import Extension
from werk.server._server import Server

__all__ = ["DEFAULT_WEB_BIND", "add_server_command", "config_from_args", "run_server"]

DEFAULT_WEB_BIND = "127.0.0.1:7420"

log = logging.getLogger("werk.server")


def add_server_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``werk server`` on the ``werk`` argument parser's sub-parsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "server",
        help="run the embedded Faktory-compatible server",
        description="Run a Faktory-compatible server (any Faktory client can use it).",
    )
    p.add_argument("--bind", default=DEFAULT_BIND, help="HOST:PORT (default %(default)s)")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"data directory for SQLite storage (default {default_data_dir()})",
    )
    p.add_argument("--storage", choices=("sqlite", "memory"), default="sqlite")
    p.add_argument(
        "--password",
        default=None,
        help="require this password (default: $FAKTORY_PASSWORD; none if unset)",
    )
    p.add_argument("--tls-cert", default=None, help="PEM certificate: serve TLS only")
    p.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    p.add_argument(
        "--max-connections",
        type=int,
        default=2000,
        help="most connections past HELLO, as Faktory (default %(default)s)",
    )
    p.add_argument(
        "--max-line",
        type=int,
        default=MAX_COMMAND_LINE,
        help="longest command line in bytes (default %(default)s: 16 MiB)",
    )
    p.add_argument(
        "--synchronous",
        choices=("NORMAL", "FULL"),
        default="NORMAL",
        help="SQLite sync level: NORMAL survives kill -9, FULL also power loss",
    )
    p.add_argument(
        "--web-bind",
        default=None,
        help=f"HOST:PORT for the web UI, needs werk[web] (default {DEFAULT_WEB_BIND})",
    )
    p.add_argument("--no-web", action="store_true", help="do not serve the web UI")
    p.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="configuration directory (DIR/conf.d/*.toml, as Faktory's -c); SIGHUP reloads it",
    )
    p.add_argument(
        "--metrics-bind",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics, with or without the web "
        "UI, which serves them too (needs werk[metrics])",
    )
    p.add_argument("--log-level", default="INFO")
    p.add_argument(
        "--log-format",
        choices=("human", "json"),
        default="human",
        help="human (default): text lines; json: one JSON object per line",
    )
    p.set_defaults(func=run_server)
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Build the server settings from parsed arguments and the environment."""
    password = args.password if args.password is not None else os.environ.get("FAKTORY_PASSWORD")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("werk server: --tls-cert and --tls-key go together")
    return ServerConfig(
        bind=args.bind,
        storage=args.storage,
        data_dir=args.data if args.data is not None else default_data_dir(),
        password=password or None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_connections=args.max_connections,
        max_line=args.max_line,
        synchronous=args.synchronous,
        config_dir=args.config_dir,
    )


async def _start_web(server: Server, bind: str, explicit: bool) -> Any:
    try:
        from werk import web
    except ImportError:
        log.log(
            logging.WARNING if explicit else logging.INFO,
            "web UI not available: pip install 'werk[web]' (aiohttp, jinja2) to get the pages",
        )
        return None
    host, port = split_bind(bind)
    try:
        handle = await web.start_web(server, host=host, port=port, password=server.config.password)
    except OSError as exc:
        if explicit:
            raise
        log.warning("web UI not started on %s (%s); use --web-bind or --no-web", bind, exc)
        return None
    log.info("web UI at %s", getattr(handle, "url", f"http://{bind}"))
    return handle


async def _start_metrics(server: Server, bind: str) -> asyncio.Server:
    from werk.server._metrics import serve_metrics

    host, port = split_bind(bind)
    listener = await serve_metrics(server, host, port)
    bound = listener.sockets[0].getsockname()
    log.info("metrics at http://%s:%d/metrics", *bound[:2])
    return listener


async def serve(
    config: ServerConfig,
    web_bind: str | None = None,
    *,
    web_explicit: bool = True,
    extensions: Sequence[Extension] | None = None,
    metrics_bind: str | None = None,
) -> None:
    """Run a server (and its web UI on ``web_bind`` unless None) until SIGTERM or SIGINT
    (the handlers only set an event); SIGHUP reloads the configuration. A web port that
    cannot be bound is fatal only when ``web_explicit``; ``extensions`` None means the
    standard ones; ``metrics_bind`` (HOST:PORT) serves ``/metrics`` there."""
    # Handlers first: a TERM that arrives while the server is starting still stops it cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    server = Server(config, extensions=extensions)
    # Before the start: a HUP then must not kill the process (start reads the files anyway).
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):  # Windows
        loop.add_signal_handler(signal.SIGHUP, server.reload_config)
    await server.start()
    # What start-up loaded (a million stored jobs, say) lives until it is deleted and is
    # never part of a reference cycle: kept out of the collector's full passes, which
    # would otherwise walk all of it on the event loop (a quarter of a second a million).
    gc.freeze()
    metrics = None
    try:
        if metrics_bind is not None:
            metrics = await _start_metrics(server, metrics_bind)
        web = await _start_web(server, web_bind, web_explicit) if web_bind else None
    except BaseException:
        if metrics is not None:
            metrics.close()
        await server.stop()
        raise
    await stop.wait()
    log.info("stopping")
    if metrics is not None:
        metrics.close()
    if web is not None and hasattr(web, "close"):
        await web.close()
    await server.stop()


def run_server(args: argparse.Namespace) -> int:
    """Entry point of ``werk server``; returns the exit code."""
    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    if args.log_format == "json":
        from werk._jsonlog import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    else:
        logging.basicConfig(
            level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):  # the "fast" extra
        runner = importlib.import_module("uvloop").run
    try:
        config = config_from_args(args)
        web_bind = None if args.no_web else (args.web_bind or DEFAULT_WEB_BIND)
        if web_bind is not None:
            split_bind(web_bind)  # a bad address stops the start, as a bad --bind does
        if args.metrics_bind is not None:
            split_bind(args.metrics_bind)
            try:
                importlib.import_module("prometheus_client")
            except ImportError:
                log.error(
                    "cannot start: --metrics-bind needs prometheus_client: "
                    "pip install 'werk[metrics]'"
                )
                return 2
        runner(
            serve(
                config,
                web_bind,
                web_explicit=args.web_bind is not None,
                metrics_bind=args.metrics_bind,
            )
        )
    except (OSError, sqlite3.Error, FaktoryError) as exc:
        # A bad setting, a port in use, a data directory locked by another server, a
        # journal of another format: one clear line rather than a traceback.
        log.error("cannot start: %s", exc)
        return 1
    return 0

"""``werk demo``: see werk work in one command, no setup.

Starts werk's embedded server in this process (unless ``FAKTORY_URL`` names a server to
use), pushes a few sample jobs (sync and async, one that fails), runs a worker with a
progress display until they are all done, then says what happened and what to try next.

Example::

    $ werk demo
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

from werk._errors import FaktoryError
from werk.worker import App, JobContext, Middleware

__all__ = ["add_demo_command", "build_demo_app"]

QUEUE = "werk-demo"  # its own queue, so a demo against a real server touches nothing else
TIMEOUT = 40.0


class PaymentDeclinedError(Exception):
    """The demo's failing job raises this."""


def build_demo_app(url: str | None = None) -> App:
    """The demo's job functions, on a fresh :class:`App` (pushes go to ``url``)."""
    app = App(url)

    @app.job(queue=QUEUE)
    def greet(name: str) -> str:
        return f"hello, {name}"

    @app.job(queue=QUEUE)
    def resize_image(image_id: int, size: str) -> None:
        time.sleep(random.uniform(0.05, 0.3))  # pretend to work

    @app.job(queue=QUEUE)
    async def fetch_page(url: str) -> None:
        await asyncio.sleep(random.uniform(0.05, 0.3))  # async jobs run on an event loop

    @app.job(queue=QUEUE, retry=2, backtrace=5)
    def charge_card(order_id: int) -> None:
        raise PaymentDeclinedError(f"card declined for order {order_id}")

    return app


class Progress(Middleware):
    """Counts finished jobs per type (worker-side hooks)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.failures: list[str] = []

    def after_process(self, ctx: JobContext, duration: float) -> None:
        with self.lock:
            self.done[ctx.jobtype] += 1

    def on_failure(self, ctx: JobContext, error: BaseException, duration: float) -> None:
        with self.lock:
            self.failed[ctx.jobtype] += 1
            self.failures.append(f"{ctx.jobtype} {ctx.jid}: {type(error).__name__}: {error}")

    @property
    def finished(self) -> int:
        with self.lock:
            return sum(self.done.values()) + sum(self.failed.values())


@contextlib.contextmanager
def _server(out: TextIO, want_web: bool) -> Iterator[tuple[str, str | None, Any]]:
    """Yield (url, web UI address or None, embedded server or None)."""
    url = os.environ.get("FAKTORY_URL") or os.environ.get("FAKTORY_PROVIDER")
    if url:
        from werk.client import resolve_url

        yield resolve_url(), None, None
        return
    from werk.server import EmbeddedServer

    with EmbeddedServer(storage="memory") as srv:
        print(f"Started an embedded Faktory-compatible server at {srv.url}", file=out)
        yield srv.url, (_start_web_ui(srv) if want_web else None), srv


def _start_web_ui(srv: Any) -> str | None:
    """Hook for the web UI (``werk.web``, extra ``werk[web]``): its address, or None."""
    try:
        from werk import web
    except ImportError:
        return None
    try:
        loop = srv.call(asyncio.get_running_loop)
        for port in (web.DEFAULT_WEB_PORT, 0):
            try:
                future = asyncio.run_coroutine_threadsafe(
                    web.start_web(srv.server, host="127.0.0.1", port=port), loop
                )
                url: str = future.result(10).url
                return url
            except OSError:
                continue  # 7420 is taken: any free port
    except Exception as exc:  # the demo goes on without its web UI
        logging.getLogger("werk.demo").debug("web UI did not start: %s", exc)
    return None


def _bar(done: int, total: int, failed: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} jobs finished, {failed} failed"


def _push_samples(app: App) -> int:
    greet, resize_image = app.jobs["greet"], app.jobs["resize_image"]
    fetch_page, charge_card = app.jobs["fetch_page"], app.jobs["charge_card"]
    names = ["Ann", "Bob", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo"]
    for name in names:
        greet.push(name)
    for i in range(8):
        resize_image.push(1000 + i, random.choice(["small", "large"]))
    for i in range(6):
        fetch_page.push(f"https://example.com/page/{i}")
    charge_card.push(1042)
    return len(names) + 8 + 6 + 1


def _run(args: argparse.Namespace) -> int:
    from werk.worker import Worker

    out = sys.stdout
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        with _server(out, not args.no_web) as (url, web_url, srv):
            progress = Progress()
            app = build_demo_app(url)
            app.add_middleware(progress)
            total = _push_samples(app)
            app.close()
            print(f"Pushed {total} sample jobs to queue {QUEUE!r} (one is meant to fail)", file=out)
            if web_url:
                keep = "" if args.keep else " (while the demo runs; --keep keeps it up)"
                print(f"Web UI: {web_url}{keep}", file=out)
            worker = Worker(app, url, concurrency=10, queues=[QUEUE], shutdown_timeout=5.0)
            print(f"Running a worker (wid {worker.wid}, 10 slots, thread executor)\n", file=out)
            started = time.monotonic()
            worker.start()
            ok = _show_progress(progress, total, out)
            worker.stop(15)
            elapsed = time.monotonic() - started
            _summary(progress, total, elapsed, url, out)
            if args.keep and srv is not None:
                print("\nThe server keeps running (Ctrl-C to stop).", file=out)
                with contextlib.suppress(KeyboardInterrupt):
                    while True:  # short sleeps: Ctrl-C may land on another thread
                        time.sleep(0.5)
    except FaktoryError as exc:
        print(f"werk demo: cannot talk to the server: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


def _show_progress(progress: Progress, total: int, out: TextIO) -> bool:
    tty = out.isatty()
    deadline = time.monotonic() + TIMEOUT
    last_line = 0.0
    while True:
        finished = progress.finished
        failed = sum(progress.failed.values())
        now = time.monotonic()
        if tty:
            print("\r" + _bar(finished, total, failed), end="", file=out, flush=True)
        elif finished >= total or now - last_line >= 1.0:
            print(_bar(finished, total, failed), file=out, flush=True)
            last_line = now
        if finished >= total:
            if tty:
                print(file=out)
            return True
        if now > deadline:
            print(f"\nGave up after {TIMEOUT:.0f} s: is the worker reaching the server?", file=out)
            return False
        time.sleep(0.1)


def _summary(progress: Progress, total: int, elapsed: float, url: str, out: TextIO) -> None:
    print(f"\nWhat happened ({elapsed:.1f} s):", file=out)
    for jobtype in sorted(set(progress.done) | set(progress.failed)):
        done, failed = progress.done[jobtype], progress.failed[jobtype]
        note = f", {failed} failed" if failed else ""
        print(f"  {jobtype:<14} {done} done{note}", file=out)
    for line in progress.failures:
        print(f"\n  FAILED {line}", file=out)
    if progress.failures:
        print(
            "  The worker sent FAIL with the error type, message and backtrace; the server\n"
            "  retries it with back-off (this one twice, then it goes to the Dead set).",
            file=out,
        )
    print(
        f"""
What to try next:
  werk server --web-bind 127.0.0.1:7420
      a server that keeps its jobs (SQLite), with the web UI
  werk push greet '["Ann"]' --queue {QUEUE}
      push a job from the shell (prints its jid)
  werk worker werk.cli.demo:demo_app -q {QUEUE}
      run the demo's jobs (or your own: werk worker yourmodule:app)
  werk info
      queues, retries, dead jobs and counters

Declare your own jobs:

    import werk
    app = werk.App()

    @app.job(queue="mail", retry=5)
    def send_email(to: str) -> None: ...

    send_email.push("ann@example.com")        # then: werk worker yourmodule:app -q mail
""",
        file=out,
    )


demo_app = build_demo_app()
"""The demo jobs as an importable app: ``werk worker werk.cli.demo:demo_app -q werk-demo``."""


def add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``werk demo``."""
    p = sub.add_parser(
        "demo",
        help="see werk work in one command",
        description="Start an embedded server (unless FAKTORY_URL is set), push sample jobs "
        "(one fails on purpose), run a worker until they are done, and show what happened.",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the embedded server (and web UI) running afterwards, until Ctrl-C",
    )
    p.add_argument("--no-web", action="store_true", help="do not start the web UI")
    p.set_defaults(func=_run)

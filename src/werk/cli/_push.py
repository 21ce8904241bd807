"""``werk push JOBTYPE [ARGS_JSON]``: enqueue one job from the shell (examples in
``werk push --help``)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from werk._errors import FaktoryError

__all__ = ["add_push_command"]

_EPILOG = """\
examples:
  werk push SendEmail '["ann@example.com"]'
  werk push Resize '[42, "large"]' --queue images --retry 5
  werk push Report '[]' --at 2030-01-01T09:00:00Z
  werk push Report --in 300                      # in five minutes
  werk push Audit '[1]' --custom '{"trace": "abc"}'

The jid of the new job is printed. The server is FAKTORY_URL, else tcp://localhost:7419.
"""


def _args_json(text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"ARGS_JSON is not valid JSON: {exc}") from None
    if not isinstance(value, list):
        value = [value]  # a single argument: werk push Resize 42
    return value


def _custom_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--custom is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--custom must be a JSON object")
    return value


def _run(args: argparse.Namespace) -> int:
    from werk.client import Client

    options: dict[str, Any] = {"queue": args.queue}
    for name in ("retry", "reserve_for", "backtrace", "custom", "jid"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.at is not None:
        options["at"] = args.at
    elif args.delay is not None:
        options["at"] = timedelta(seconds=args.delay)
    try:
        with Client(args.url) as client:
            jid = client.push(args.jobtype, *args.args, **options)
    except (FaktoryError, TypeError) as exc:
        print(f"werk push: {exc}", file=sys.stderr)
        return 1
    print(jid)
    return 0


def add_push_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``werk push``."""
    p = sub.add_parser(
        "push",
        help="enqueue a job",
        description="Push one job to Faktory and print its jid.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("jobtype", metavar="JOBTYPE", help="the job type, e.g. SendEmail")
    p.add_argument(
        "args",
        metavar="ARGS_JSON",
        nargs="?",
        type=_args_json,
        default=[],
        help="the job's arguments as a JSON array (a single value means one argument)",
    )
    p.add_argument("-q", "--queue", default="default", help="queue name (default: default)")
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--at", metavar="TIME", help="run at this RFC3339 time, e.g. 2030-01-01T09:00:00Z"
    )
    when.add_argument(
        "--in", dest="delay", type=float, metavar="SECONDS", help="run after this many seconds"
    )
    p.add_argument("--retry", type=int, help="retries before the dead set (server default 25)")
    p.add_argument("--reserve-for", type=int, metavar="SECONDS", help="reservation (default 1800)")
    p.add_argument("--backtrace", type=int, metavar="N", help="backtrace lines to keep on failure")
    p.add_argument("--custom", type=_custom_json, metavar="JSON", help="custom hash, a JSON object")
    p.add_argument("--jid", help="job id (default: random)")
    p.add_argument("--url", default=None, help="server URL (default: FAKTORY_URL)")
    p.set_defaults(func=_run)

"""``werk cron --config-dir DIR``: the cron entries of a configuration directory and their
next runs, checked as the server checks them (a bad file: its name and line, exit 1)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from werk._errors import FaktoryError
from werk._humanize import duration
from werk.server._config import ServerConfig
from werk.server._cron import CronEntry, read_entries
from werk.server._features import standard_extensions
from werk.server._hooks import read_configs

__all__ = ["add_cron_command", "check_entries", "format_entries"]


def check_entries(config_dir: Path) -> tuple[CronEntry, ...]:
    """Read ``config_dir/conf.d/*.toml`` as ``werk server --config-dir`` would (every
    standard extension checks its part) and return the cron entries;
    :class:`~werk.ConfigurationError` naming the file and line otherwise.

    Example::

        >>> check_entries(Path("/no/such/dir"))
        Traceback (most recent call last):
        ...
        werk.ConfigurationError: config_dir '/no/such/dir' is not a directory
    """
    settings = ServerConfig(storage="memory", config_dir=config_dir)
    config = settings.load()
    read_configs(standard_extensions(settings), config)
    return read_entries(config)


def _utc(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def format_entries(entries: tuple[CronEntry, ...], now: float, runs: int = 1) -> str:
    """The entries as a table: schedule, job type, queue, next run(s), where written.

    Example::

        >>> from werk.server._confd import Config
        >>> config = Config.from_data({"cron": [{"schedule": "@hourly", "job": {"type": "T"}}]})
        >>> print(format_entries(read_entries(config), now=0))
        SCHEDULE  TYPE  QUEUE    NEXT RUN                         WHERE
        @hourly   T     default  1970-01-01 01:00 UTC (in 1h 0m)  config["cron"][0]
    """
    rows = [("SCHEDULE", "TYPE", "QUEUE", "NEXT RUN", "WHERE")]
    for entry in entries:
        when = entry.schedule.next_after(now)
        nexts = [f"{_utc(when)} (in {duration(when - now)})"]
        for _ in range(runs - 1):
            when = entry.schedule.next_after(when)
            nexts.append(_utc(when))
        rows.append((entry.schedule.text, entry.jobtype, entry.queue, nexts[0], entry.origin))
        rows.extend(("", "", "", later, "") for later in nexts[1:])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        (
            "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        ).rstrip()
        for row in rows
    )


def _run(args: argparse.Namespace) -> int:
    now = time.time() if args.at is None else args.at.timestamp()
    try:
        entries = check_entries(args.config_dir)
    except FaktoryError as exc:
        print(f"werk cron: {exc}", file=sys.stderr)
        return 1
    if args.json:
        rows = [
            {
                "id": e.id,
                "schedule": e.schedule.text,
                "job": dict(e.job),
                "where": e.origin,
                "next": _next(e, now, args.next),
            }
            for e in entries
        ]
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif not entries:
        print(f"no cron entries in {args.config_dir}/conf.d")
    else:
        print(format_entries(entries, now, args.next))
    return 0


def _next(entry: CronEntry, now: float, runs: int) -> list[str]:
    out = []
    for _ in range(runs):
        now = entry.schedule.next_after(now)
        out.append(dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


def _moment(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"--next takes 1 to 100, not {text!r}")
    return int(text)


def add_cron_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``werk cron``."""
    p = sub.add_parser(
        "cron",
        help="list the cron entries of a configuration directory and their next runs",
        description="Check DIR/conf.d/*.toml as `werk server --config-dir DIR` does and list "
        "its [[cron]] entries: schedule, job type, queue, next run (UTC), file and line. "
        "A bad file is reported with its name and line (exit status 1).",
    )
    p.add_argument("--config-dir", type=Path, required=True, metavar="DIR")
    p.add_argument("--next", type=_count, default=1, metavar="N", help="show N next runs")
    p.add_argument(
        "--at", type=_moment, default=None, metavar="TIME", help="as if it were TIME (RFC 3339)"
    )
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(func=_run)

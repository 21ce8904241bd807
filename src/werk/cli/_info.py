"""``werk info``: what the server holds, as a table (or JSON for scripts)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from werk._errors import FaktoryError
from werk._humanize import duration

__all__ = ["add_info_command", "format_info"]


def format_info(info: dict[str, Any], where: str = "") -> str:
    """INFO (``client.info()``) as a readable table; ``where`` names the server."""
    server = info.get("server", {})
    faktory = info.get("faktory", {})
    lines = [
        f"server     {server.get('description', 'Faktory')} {server.get('faktory_version', '?')}"
        + (f" at {where}" if where else "")
        + f", up {duration(server.get('uptime', 0))}, "
        f"{server.get('connections', 0)} connections",
        f"processed  {faktory.get('total_processed', 0):,}",
        f"failures   {faktory.get('total_failures', 0):,}",
        "",
    ]
    sets = faktory.get("sets", {})
    lines.append("sets")
    for name in ("scheduled", "retries", "dead", "working"):
        lines.append(f"  {name:<10} {sets.get(name, 0):>10,}")
    queues: dict[str, int] = faktory.get("queues", {})
    lines.append("")
    if queues:
        width = max(10, *(len(q) for q in queues))
        lines.append(f"queues ({faktory.get('total_queues', len(queues))})")
        for name, size in sorted(queues.items()):
            lines.append(f"  {name:<{width}} {size:>10,}")
        lines.append(f"  {'total':<{width}} {faktory.get('total_enqueued', 0):>10,}")
    else:
        lines.append("queues     none yet")
    workers = faktory.get("tasks", {}).get("Workers", {}).get("size")
    if workers is not None:
        lines.append("")
        lines.append(f"workers    {workers}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from werk.client import Client

    try:
        with Client(args.url) as client:
            info = client.info()
            where = str(client.settings.endpoint)
    except FaktoryError as exc:
        print(f"werk info: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(info, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print(format_info(info, where))
    return 0


def add_info_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``werk info``."""
    p = sub.add_parser(
        "info",
        help="show queues, sets and counters",
        description="Show what the Faktory server holds: queues, scheduled/retry/dead sets, "
        "counters. The server is FAKTORY_URL, else tcp://localhost:7419.",
    )
    p.add_argument("--json", action="store_true", help="print the raw INFO reply as JSON")
    p.add_argument("--url", default=None, help="server URL (default: FAKTORY_URL)")
    p.set_defaults(func=_run)

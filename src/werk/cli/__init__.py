"""The ``werk`` command line (``werk --help``, ``werk COMMAND --help``).

Sub-commands (each lives in its own module and registers itself with
``add_<name>_command(subparsers)``):

* ``werk server``: run the embedded Faktory-compatible server.
* ``werk worker MODULE[:APP]``: run jobs.
* ``werk push JOBTYPE [ARGS_JSON]``: enqueue a job.
* ``werk info``: what the server holds.
* ``werk cron --config-dir DIR``: the cron entries of a configuration and their next runs.
* ``werk demo``: see it all work in one command.

Example::

    $ werk server                 # jobs on 127.0.0.1:7419, web UI on 127.0.0.1:7420
    $ werk server --storage memory --bind :7419 --no-web
    $ werk push SendEmail '["ann@example.com"]' --queue mail
    f0e1d2c3b4a59687
    $ werk info
    server     Faktory 1.10.0 at tcp://localhost:7419, up 3h 12m, 7 connections
    ...

The Python API here is :func:`main` (the ``werk`` script) and :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from werk._version import __version__

__all__ = ["build_parser", "main"]

# Sub-command -> the module that registers it (one whose extra is missing is left out).
_COMMANDS = {
    "demo": "werk.cli.demo",
    "server": "werk.cli._server",
    "worker": "werk.cli.worker",
    "push": "werk.cli._push",
    "info": "werk.cli._info",
    "cron": "werk.cli._cron",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``werk`` with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="werk",
        description="werk: the Python toolkit for Faktory (client, worker, embedded server).",
    )
    parser.add_argument("--version", action="version", version=f"werk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in _COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name != module_name:
                raise
            continue
        getattr(module, f"add_{name}_command")(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``werk`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result = func(args)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

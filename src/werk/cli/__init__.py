"""The ``werk`` command line.

Sub-commands (each lives in its own module and registers itself with
``add_<name>_command(subparsers)``):

* ``werk server``: run the embedded Faktory-compatible server.
* ``werk worker MODULE[:APP]``: run jobs.
* ``werk push JOBTYPE [ARGS_JSON]``: enqueue a job.
* ``werk info``: what the server holds.
* ``werk demo``: see it all work in one command.

Example::

    $ werk server --storage memory &
    $ werk push SendEmail '["ann@example.com"]'
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from werk._version import __version__

__all__ = ["build_parser", "main"]

_COMMANDS = ("demo", "server", "worker", "push", "info")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``werk`` with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="werk",
        description="werk: the Python toolkit for Faktory (client, worker, embedded server).",
    )
    parser.add_argument("--version", action="version", version=f"werk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"werk.cli.{name}")
        except ImportError as exc:
            if exc.name != f"werk.cli.{name}":
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

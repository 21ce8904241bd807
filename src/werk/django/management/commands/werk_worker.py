"""``python manage.py werk_worker MODULE[:APP] [options]``: ``werk worker`` with the settings
``manage.py`` chose; every option is ``werk worker``'s (see ``werk worker --help``).

Example::

    $ python manage.py werk_worker mysite.jobs -c 10 -q critical -q default
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

__all__ = ["Command"]


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no types
    """Run ``werk worker`` in this Django project (Django set up as the CLI does it).

    Example::

        call_command("werk_worker", "mysite.jobs", "-c", "4")
    """

    help = "Run a werk worker for the jobs of this project (the options of `werk worker`)."

    def add_arguments(self, parser: Any) -> None:
        """Everything after the command goes to ``werk worker``."""
        parser.add_argument("worker_args", nargs=argparse.REMAINDER, metavar="MODULE[:APP] ...")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the worker until it stops; its exit code becomes the command's."""
        from werk.cli import main

        code = main(["worker", *options["worker_args"]])
        if code:
            raise CommandError(f"werk worker exited with {code}", returncode=code)

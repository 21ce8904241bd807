"""Shared test setup.

The server fixtures (``faktory_server``, ``faktory_server_password``, ``manual_server``,
``faktory_url``) come from werk's own pytest plugin, :mod:`werk.testing`, the same one
users get in their test suites.
"""

from __future__ import annotations

import sys
from pathlib import Path

# "from tests.transcripts import load" works however pytest is started.
_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

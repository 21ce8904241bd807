"""Log records as JSON lines: one object per record, for log shippers (Loki, ELK, ...).

Standard library only, so that both ``werk worker`` and ``werk server`` can use it.

Example::

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    # {"time": "2026-01-02T03:04:05.678Z", "level": "INFO", "logger": "werk.worker.job",
    #  "message": "done jid=... jobtype=add duration=0.002s", "jid": "...", "jobtype": "add",
    #  "queue": "default", "duration": 0.002}
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["JsonFormatter"]

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12+
}


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object on one line.

    Keys: ``time`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``, ``message``, then
    every field the call gave with ``extra=`` (``jid``, ``jobtype``, ``queue``,
    ``duration``, ``errtype`` ...), and ``exception`` with the traceback text when there
    is one. A value JSON cannot hold is written as its ``repr``.

    Example::

        handler.setFormatter(JsonFormatter())
    """

    def format(self, record: logging.LogRecord) -> str:
        secs = int(record.created)
        millis = int((record.created - secs) * 1000)
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{millis:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # One line whatever the message holds: json.dumps escapes newlines.
        return json.dumps(out, default=repr, ensure_ascii=False)

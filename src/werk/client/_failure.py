"""A failed job as FAIL reports it: the error's type, its message and its backtrace.

:func:`format_backtrace` is werk's one backtrace formatter: the client's ``fail()`` and the
worker's job runner both send its lines. The server keeps at most 50 lines, 100 bytes of
errtype and 1000 of message; they are cut here, cleanly, rather than there, mid-character.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import traceback
from collections.abc import Sequence
from typing import Final

from werk._errors import LocalProtocolError
from werk._job import Job
from werk._protocol import command_lines
from werk._protocol.replies import Request, ok

__all__ = ["MAX_BACKTRACE", "fail_request", "format_backtrace"]

MAX_BACKTRACE: Final = 50
"""The most backtrace lines the server keeps."""
_MAX_ERRTYPE_BYTES: Final = 100
_MAX_MESSAGE_BYTES: Final = 1000

# Frames of the machinery between werk and a job's handler, left out of backtraces: the
# worker's own modules and the executors' (asyncio, concurrent.futures).
_MACHINERY: Final = frozenset(
    os.path.dirname(os.path.abspath(path))
    for path in (
        os.path.join(os.path.dirname(os.path.dirname(__file__)), "worker", "__init__.py"),
        asyncio.__file__,
        concurrent.futures.__file__,
    )
)


def format_backtrace(exc: BaseException, limit: int) -> list[str]:
    """The exception's stack as lines, innermost frame first, at most ``limit`` of them.

    One line per frame (``File "jobs.py", line 12, in resize: raise ValueError(...)``), so a
    job's ``backtrace: N`` keeps the N frames nearest the error. Frames of werk's worker and
    of the asyncio and concurrent.futures machinery are left out.
    """
    if limit <= 0:
        return []
    lines: list[str] = []
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.dirname(os.path.abspath(frame.filename)) in _MACHINERY:
            continue
        line = f'File "{frame.filename}", line {frame.lineno}, in {frame.name}'
        if frame.line:
            line += f": {frame.line}"
        lines.append(line)
        if len(lines) >= limit:
            break
    return lines


def _clip(text: str, limit: int) -> str:
    # The server cuts at a byte count, possibly inside a UTF-8 sequence; cut cleanly here.
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def fail_request(
    job_or_jid: Job | str,
    exc_or_message: BaseException | str,
    errtype: str | None = None,
    backtrace: Sequence[str] | int | None = None,
) -> Request[None]:
    """FAIL for a job that raised ``exc`` (or failed with a message).

    ``errtype`` defaults to the exception's class name (``"Error"`` for a message);
    ``backtrace`` is a list of lines to send, or an int capping the lines taken from the
    exception's traceback (default: the job's ``backtrace`` field when a Job is given, else
    50).
    """
    if isinstance(job_or_jid, Job):
        jid, limit = job_or_jid.jid, job_or_jid.backtrace
    else:
        jid, limit = job_or_jid, None
    if not isinstance(jid, str) or not jid:
        raise LocalProtocolError(f"FAIL needs the jid of the failed job, got {jid!r}")
    if isinstance(exc_or_message, BaseException):
        message = str(exc_or_message) or repr(exc_or_message)
        kind = errtype or type(exc_or_message).__name__
        if isinstance(backtrace, int):
            limit = backtrace
        if backtrace is None or isinstance(backtrace, int):
            cap = MAX_BACKTRACE if not limit or limit <= 0 else min(limit, MAX_BACKTRACE)
            lines = format_backtrace(exc_or_message, cap)
        else:
            lines = list(backtrace)
    else:
        message = str(exc_or_message)
        kind = errtype or "Error"
        lines = [] if backtrace is None or isinstance(backtrace, int) else list(backtrace)
    line = command_lines.fail(
        jid,
        _clip(kind, _MAX_ERRTYPE_BYTES),
        _clip(message, _MAX_MESSAGE_BYTES),
        lines[:MAX_BACKTRACE],
    )
    return Request(line, ok)

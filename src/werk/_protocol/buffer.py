"""The receive buffer under both stream readers (replies and command lines).

Bytes are appended as they arrive and consumed from the front; the search for the next
terminator resumes where the last one stopped (``_scan``), so no byte is looked at twice.
The consumed front is dropped when everything was read, or now and then (past 64 KiB) so
that a long-lived connection does not keep every byte it ever received.
"""

from __future__ import annotations

from typing import Final

from werk._errors import LineTooLongError

__all__ = ["ReceiveBuffer"]

_COMPACT_AFTER: Final = 65536


class ReceiveBuffer:
    """Base of :class:`~werk._protocol.resp.ReplyReader` and
    :class:`~werk._protocol.command_lines.LineReader`: ``max_line`` caps a line (what
    ``noun`` names in the error)."""

    __slots__ = ("_buf", "_pos", "_scan", "max_line")
    noun = "line"

    def __init__(self, max_line: int) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the unread part of _buf
        self._scan = 0  # where the search for the next terminator resumes
        self.max_line = max_line

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (copied: the caller may reuse its buffer)."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet consumed."""
        return len(self._buf) - self._pos

    def _too_long(self) -> LineTooLongError:
        return LineTooLongError(f"{self.noun} longer than {self.max_line} bytes")

    def _consume(self, end: int) -> None:
        # Everything before ``end`` has been read.
        buf = self._buf
        if end >= len(buf):
            buf.clear()
            end = 0
        elif end > _COMPACT_AFTER:
            del buf[:end]
            end = 0
        self._pos = end
        self._scan = end

"""The receive buffer under both stream readers (replies and command lines).

Bytes are appended as they arrive and consumed from the front; the search for the next
terminator resumes where the last one stopped (``_scan``), so no byte is looked at twice.
The consumed front is dropped when everything was read, or now and then (past 64 KiB) so
that a long-lived connection does not keep every byte it ever received.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ReceiveBuffer"]

_COMPACT_AFTER: Final = 65536


class ReceiveBuffer:
    """Base of :class:`~werk._protocol.resp.ReplyReader` and
    :class:`~werk._protocol.command_lines.LineReader`."""

    __slots__ = ("_buf", "_pos", "_scan")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the unread part of _buf
        self._scan = 0  # where the search for the next terminator resumes

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (copied: the caller may reuse its buffer)."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet consumed."""
        return len(self._buf) - self._pos

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

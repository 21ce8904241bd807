"""Command lines as the server reads them (server role).

A client sends one command per line. Only ``\\n`` ends a line; a trailing ``\\r\\n`` or
``\\n`` is stripped and a lone ``\\r`` stays inside the line, as on the real server.

Example::

    >>> r = LineReader()
    >>> r.feed(b"PUSH {}\\r\\nINF")
    >>> r.next_line()
    b'PUSH {}'
    >>> r.next_line() is None
    True
    >>> split_command(b"PUSH {}")
    (b'PUSH', b'{}')
"""

from __future__ import annotations

from werk.errors import LineTooLongError

__all__ = ["DEFAULT_MAX_LINE", "LineReader", "split_command"]

DEFAULT_MAX_LINE = 16 * 1024 * 1024
"""The longest command line werk's server accepts unless told otherwise (``--max-line``),
in bytes, without its line end; so the largest job is a PUSH of that size less ``PUSH ``.
The real server has no such limit (its jobs are bounded by Redis's 512 MB strings): 16 MiB
leaves any sane job room, while one client cannot make the server buffer gigabytes.
werk's clients accept reply lines that long too (the server may echo a whole command line
in an error: ``-ERR invalid ACK ...``)."""


class LineReader:
    """Incremental splitter of a byte stream into command lines.

    An unterminated line longer than ``max_line`` raises
    :class:`~werk.errors.LineTooLongError` (the server answers and closes).
    """

    __slots__ = ("_buf", "_pos", "_scan", "max_line")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._scan = 0
        self.max_line = max_line

    def feed(self, data: bytes) -> None:
        """Append bytes received from a client."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a line."""
        return len(self._buf) - self._pos

    def next_line(self) -> bytes | None:
        """The next complete line without its terminator, or None if none is complete."""
        buf = self._buf
        pos = self._pos
        nl = buf.find(b"\n", self._scan)
        if nl < 0:
            self._scan = len(buf)
            if len(buf) - pos > self.max_line + 1:  # + 1: a CR may await its LF
                raise LineTooLongError(f"line longer than {self.max_line} bytes")
            return None
        end = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl
        if end - pos > self.max_line:  # the cap is on the line, not its terminator
            raise LineTooLongError(f"line longer than {self.max_line} bytes")
        line = bytes(buf[pos:end])
        nxt = nl + 1
        if nxt >= len(buf):
            buf.clear()
            nxt = 0
        elif nxt > 65536:
            del buf[:nxt]
            nxt = 0
        self._pos = nxt
        self._scan = nxt
        return line


def split_command(line: bytes) -> tuple[bytes, bytes | None]:
    """Split a line into its verb and argument.

    The verb is everything before the first space; the argument is everything after it,
    or None when the line has no space at all (a bare verb).

    Example::

        >>> split_command(b"FETCH a b")
        (b'FETCH', b'a b')
        >>> split_command(b"ACK")
        (b'ACK', None)
        >>> split_command(b"ACK ")
        (b'ACK', b'')
    """
    sp = line.find(b" ")
    if sp < 0:
        return line, None
    return line[:sp], line[sp + 1 :]

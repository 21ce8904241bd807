"""RESP framing: the replies a Faktory server writes, read and written as pure bytes.

Client role: :class:`ReplyReader` turns a byte stream into replies, one at a time, and
never rescans bytes it has already looked at. Server role: ``encode_*`` build the bytes
of each reply form.

Reply values:

===========================  ==========================
wire                         value
===========================  ==========================
``+OK\\r\\n``                ``"OK"`` (``str``)
``-ERR text\\r\\n``          ``ErrorReply("ERR", "text")``
``$5\\r\\nhello\\r\\n``      ``b"hello"`` (``bytes``)
``$-1\\r\\n``                ``None``
``:42\\r\\n``                ``42`` (``int``)
===========================  ==========================

Example::

    >>> r = ReplyReader()
    >>> r.feed(b"+OK\\r\\n$2\\r\\n{}")
    >>> r.next_reply()
    'OK'
    >>> r.next_reply() is NEED_DATA
    True
    >>> r.feed(b"\\r\\n")
    >>> r.next_reply()
    b'{}'
"""

from __future__ import annotations

from typing import Final, Union

from werk._errors import (
    AuthenticationError,
    EnterpriseOnlyError,
    JobNotFoundError,
    LineTooLongError,
    NotUniqueError,
    RemoteProtocolError,
    ServerError,
    ShutdownInProgressError,
    UnknownWorkerError,
)
from werk._protocol.buffer import ReceiveBuffer
from werk._protocol.command_lines import MAX_COMMAND_LINE

__all__ = [
    "NEED_DATA",
    "NULL_BULK",
    "OK",
    "ErrorReply",
    "Reply",
    "ReplyReader",
    "encode_bulk",
    "encode_error",
    "encode_simple",
]

MAX_BULK_REPLY: Final = 512 * 1024 * 1024
"""The largest bulk string a client reads."""
MAX_REPLY_LINE: Final = MAX_COMMAND_LINE + 64
"""The longest reply line a client reads: an error line may echo a whole command line
after ``-ERR invalid ``, so the command cap plus room for that prefix."""

# The error messages that mean something to a client, as the real server writes them
# (after the code ``ERR``): each is matched here and nowhere else.
INVALID_PASSWORD: Final = "Invalid password"
JOB_NOT_FOUND: Final = "Job not found"
UNKNOWN_WORKER: Final = "unknown worker"  # matched in any case
ENTERPRISE_ONLY: Final = "only available in Faktory Enterprise"
SHUTDOWN_IN_PROGRESS: Final = "shutdown in progress"
TOO_MANY_CONNECTIONS: Final = "too many connections"

OK: Final = b"+OK\r\n"
NULL_BULK: Final = b"$-1\r\n"


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
"""Returned by :meth:`ReplyReader.next_reply` when the buffer holds no complete reply yet."""


class ErrorReply:
    """An error line, ``-CODE message``, as a value (not raised).

    Example::

        >>> ErrorReply("ERR", "Invalid password").to_exception()
        AuthenticationError('ERR Invalid password')
    """

    __slots__ = ("code", "message")

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message

    def to_exception(self) -> ServerError:
        """The most specific :class:`werk.ServerError` for this reply.

        Example::

            >>> type(ErrorReply("ERR", "Job not found 0123456789abcdef").to_exception()).__name__
            'JobNotFoundError'
        """
        code, message = self.code, self.message
        cls: type[ServerError] = ServerError
        if code == "ERR":
            if message == INVALID_PASSWORD:
                cls = AuthenticationError
            elif message.startswith(JOB_NOT_FOUND):
                cls = JobNotFoundError
            elif message.lower().startswith(UNKNOWN_WORKER):
                cls = UnknownWorkerError
            elif message.endswith(ENTERPRISE_ONLY):
                cls = EnterpriseOnlyError
            elif message == SHUTDOWN_IN_PROGRESS:
                cls = ShutdownInProgressError
        elif code == "NOTUNIQUE":
            cls = NotUniqueError
        return cls(code, message)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ErrorReply)
            and other.code == self.code
            and other.message == self.message
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __repr__(self) -> str:
        return f"ErrorReply({self.code!r}, {self.message!r})"


Reply = Union[str, bytes, None, int, ErrorReply]  # noqa: UP007 - a runtime alias on 3.10


class ReplyReader(ReceiveBuffer):
    """Incremental reader of server replies (client role).

    Feed it whatever bytes arrive; call :meth:`next_reply` until it returns
    :data:`NEED_DATA`. A reply split at any byte boundary parses the same. Bulk strings
    larger than ``max_bulk`` and lines longer than ``max_line`` raise
    :class:`~werk.LineTooLongError` instead of growing without bound.
    """

    __slots__ = ("_bulk_len", "max_bulk")
    noun = "reply line"

    def __init__(self, max_bulk: int = MAX_BULK_REPLY, max_line: int = MAX_REPLY_LINE) -> None:
        super().__init__(max_line)
        self._bulk_len = -1  # >= 0 while waiting for the body of a bulk string
        self.max_bulk = max_bulk

    def feed_and_read(self, data: bytes | bytearray | memoryview) -> Reply | _NeedData:
        """:meth:`feed` then :meth:`next_reply`, in one call.

        The commonest reply by far, a lone ``+OK\\r\\n`` arriving on an empty buffer, is
        recognised without copying it into the buffer (the per-job path of a client).

        Example::

            >>> ReplyReader().feed_and_read(b"+OK\\r\\n")
            'OK'
        """
        if not self._buf and self._bulk_len < 0:
            # A whole reply on an empty buffer (the usual case: one command in flight) is
            # read straight from ``data``; anything else (a part, several, an error) goes
            # through the buffer.
            size = len(data)
            if size == 5:
                if data == OK:
                    return "OK"
                if data == NULL_BULK:
                    return None
            elif size > 5 and data[0] == 0x24 and data[-1] == 0x0A:  # '$' ... '\n'
                body = self._whole_bulk(bytes(data))
                if body is not None:
                    return body
        self._buf += data
        return self.next_reply()

    def _whole_bulk(self, data: bytes) -> bytes | None:
        # ``data`` as exactly one complete bulk string: its body, else None.
        nl = data.find(b"\r\n")
        digits = data[1:nl]
        if nl < 0 or not digits.isdigit():
            return None
        start = nl + 2
        end = start + int(digits)
        if len(data) != end + 2 or end - start > self.max_bulk or data[end] != 0x0D:
            return None
        return data[start:end]

    def next_reply(self) -> Reply | _NeedData:
        """Return the next complete reply, or :data:`NEED_DATA`.

        Raises :class:`~werk.RemoteProtocolError` on bytes that are not RESP.
        """
        buf = self._buf
        pos = self._pos
        if self._bulk_len >= 0:
            return self._bulk_body()
        nl = buf.find(b"\r\n", self._scan)
        if nl < 0:
            if len(buf) - pos > self.max_line:
                raise self._too_long()
            # Resume one byte back: the CR of a CRLF may be the last byte we have.
            self._scan = max(pos, len(buf) - 1)
            return NEED_DATA
        if nl - pos > self.max_line:
            raise self._too_long()
        kind = buf[pos]
        body = bytes(buf[pos + 1 : nl])
        if kind == 0x2B:  # '+'
            self._consume(nl + 2)
            return body.decode("utf-8", "replace")
        if kind == 0x24:  # '$'
            if body == b"-1":
                self._consume(nl + 2)
                return None
            if not body.isdigit():
                raise RemoteProtocolError(f"malformed bulk string length: {body!r}")
            size = int(body)
            if size > self.max_bulk:
                raise LineTooLongError(f"bulk reply of {size} bytes exceeds {self.max_bulk}")
            self._consume(nl + 2)
            self._bulk_len = size
            return self._bulk_body()
        if kind == 0x2D:  # '-'
            self._consume(nl + 2)
            text = body.decode("utf-8", "replace")
            code, _, message = text.partition(" ")
            return ErrorReply(code, message)
        if kind == 0x3A:  # ':'
            try:
                value = int(body)
            except ValueError:
                raise RemoteProtocolError(f"malformed integer reply: {body!r}") from None
            self._consume(nl + 2)
            return value
        raise RemoteProtocolError(f"unexpected reply: {bytes(buf[pos : nl + 2])!r}")

    def _bulk_body(self) -> bytes | _NeedData:
        buf = self._buf
        start = self._pos
        end = start + self._bulk_len
        if len(buf) < end + 2:
            return NEED_DATA
        if buf[end : end + 2] != b"\r\n":
            raise RemoteProtocolError("bulk string not terminated by CRLF")
        data = bytes(buf[start:end])
        self._bulk_len = -1
        self._consume(end + 2)
        return data


def encode_simple(text: str | bytes) -> bytes:
    """``+text\\r\\n``.

    Example::

        >>> encode_simple("OK")
        b'+OK\\r\\n'
    """
    if isinstance(text, str):
        text = text.encode()
    return b"+" + text + b"\r\n"


def encode_error(message: str | bytes, code: str = "ERR") -> bytes:
    """``-CODE message\\r\\n``; bytes messages are written verbatim (the server echoes raw input).

    Example::

        >>> encode_error("unknown command FOO")
        b'-ERR unknown command FOO\\r\\n'
    """
    if isinstance(message, str):
        message = message.encode("utf-8", "replace")
    return b"-" + code.encode() + b" " + message + b"\r\n"


def encode_bulk(data: bytes | None) -> bytes:
    """``$n\\r\\ndata\\r\\n``, or ``$-1\\r\\n`` for ``None``.

    Example::

        >>> encode_bulk(b"{}")
        b'$2\\r\\n{}\\r\\n'
    """
    if data is None:
        return NULL_BULK
    return b"$%d\r\n%b\r\n" % (len(data), data)

"""Command lines, as a client writes them (client role) and the server reads them.

A command is one line: a verb, maybe an argument (compact JSON or space-separated words),
CRLF. The writing half returns each complete line, ready to write, and refuses what the
protocol cannot carry (a FETCH without queues, a queue name with a space, a MUTATE whose
JSON contains a space) with :class:`~werk.LocalProtocolError` instead of sending
something the server would misread. The reading half splits a byte stream into lines as
the real server does: only ``\\n`` ends a line; a trailing ``\\r\\n`` or ``\\n`` is stripped
and a lone ``\\r`` stays inside the line.

Example::

    >>> ack("f0e1d2c3b4a5")
    b'ACK {"jid":"f0e1d2c3b4a5"}\\r\\n'
    >>> fetch(["critical", "default"])
    b'FETCH critical default\\r\\n'
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

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from werk._errors import LocalProtocolError
from werk._protocol.buffer import ReceiveBuffer
from werk._protocol.jsonc import dumps, dumps_str

__all__ = [
    "MAX_COMMAND_LINE",
    "LineReader",
    "ack",
    "batch_commit",
    "batch_new",
    "batch_open",
    "batch_status",
    "beat",
    "end",
    "fail",
    "fetch",
    "flush",
    "hello",
    "info",
    "mutate",
    "push",
    "pushb",
    "queue",
    "split_command",
    "track_get",
    "track_set",
]

MAX_COMMAND_LINE: Final = 16 * 1024 * 1024
"""The longest command line werk's server accepts unless told otherwise (``--max-line``),
in bytes, without its line end; so the largest job is a PUSH of that size less ``PUSH ``.
The real server has no such limit (its jobs are bounded by Redis's 512 MB strings): 16 MiB
leaves any sane job room, while one client cannot make the server buffer gigabytes.
werk's clients accept reply lines that long too (the server may echo a whole command line
in an error: ``-ERR invalid ACK ...``)."""

_CRLF = b"\r\n"
_INFO = b"INFO\r\n"
_FLUSH = b"FLUSH\r\n"
_END = b"END\r\n"


def _token(name: str, what: str) -> bytes:
    # A token is a single space-separated word on the line: no whitespace, not empty.
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise LocalProtocolError(f"{what} must be a non-empty word without whitespace: {name!r}")
    return name.encode("utf-8")


def _json_line(verb: bytes, obj: Any) -> bytes:
    return verb + dumps(obj) + _CRLF


def hello(payload: Mapping[str, Any]) -> bytes:
    """``HELLO {...}``."""
    return _json_line(b"HELLO ", payload)


def push(job: Mapping[str, Any]) -> bytes:
    """``PUSH {job}``."""
    return b"PUSH " + dumps(job) + _CRLF


def pushb(jobs: Sequence[Mapping[str, Any]]) -> bytes:
    """``PUSHB [job, ...]``."""
    return _json_line(b"PUSHB ", list(jobs))


def fetch(queues: Iterable[str]) -> bytes:
    """``FETCH q1 q2 ...`` in priority order; at least one queue."""
    names = [_token(q, "queue name") for q in queues]
    if not names:
        raise LocalProtocolError("FETCH needs at least one queue name")
    return b"FETCH " + b" ".join(names) + _CRLF


def ack(jid: str) -> bytes:
    """``ACK {"jid":...}``."""
    if type(jid) is str:  # the per-job path: no dict, no general encoder
        return b'ACK {"jid":' + dumps_str(jid) + b"}\r\n"
    return _json_line(b"ACK ", {"jid": jid})


def fail(
    jid: str,
    errtype: str,
    message: str,
    backtrace: Sequence[str] | None = None,
) -> bytes:
    """``FAIL {"jid","errtype","message","backtrace"}`` (backtrace omitted when empty)."""
    payload: dict[str, Any] = {"jid": jid, "errtype": errtype, "message": message}
    if backtrace:
        payload["backtrace"] = list(backtrace)
    return _json_line(b"FAIL ", payload)


def beat(wid: str, current_state: str | None = None, rss_kb: int | None = None) -> bytes:
    """``BEAT {"wid":...,"current_state":...,"rss_kb":...}``."""
    payload: dict[str, Any] = {"wid": wid}
    if current_state:
        payload["current_state"] = current_state
    if rss_kb is not None:
        payload["rss_kb"] = rss_kb
    return _json_line(b"BEAT ", payload)


def info() -> bytes:
    """``INFO``."""
    return _INFO


def flush() -> bytes:
    """``FLUSH``."""
    return _FLUSH


def end() -> bytes:
    """``END`` (the server closes without a reply)."""
    return _END


def mutate(operation: Mapping[str, Any]) -> bytes:
    """``MUTATE {...}``; the server splits the line on spaces, so none may appear in the JSON."""
    body = dumps(operation)
    if b" " in body:
        raise LocalProtocolError(
            "MUTATE cannot carry a space anywhere in its JSON (the server splits the line on "
            "spaces); use ? or [ ] in the glob instead of a space"
        )
    return b"MUTATE " + body + _CRLF


def queue(sub: str, names: Sequence[str]) -> bytes:
    """``QUEUE PAUSE|RESUME|REMOVE|LATENCY name ...`` (``*`` allowed where the server allows it)."""
    tokens = [_token(n, "queue name") for n in names]
    if not tokens:
        raise LocalProtocolError(f"QUEUE {sub} needs at least one queue name")
    return b"QUEUE " + _token(sub.upper(), "subcommand") + b" " + b" ".join(tokens) + _CRLF


def batch_new(batch: Mapping[str, Any]) -> bytes:
    """``BATCH NEW {...}`` (Faktory Enterprise)."""
    return _json_line(b"BATCH NEW ", batch)


def batch_open(bid: str) -> bytes:
    """``BATCH OPEN <bid>`` (Faktory Enterprise)."""
    return b"BATCH OPEN " + _token(bid, "batch id") + _CRLF


def batch_commit(bid: str) -> bytes:
    """``BATCH COMMIT <bid>`` (Faktory Enterprise)."""
    return b"BATCH COMMIT " + _token(bid, "batch id") + _CRLF


def batch_status(bid: str) -> bytes:
    """``BATCH STATUS <bid>`` (Faktory Enterprise)."""
    return b"BATCH STATUS " + _token(bid, "batch id") + _CRLF


def track_get(jid: str) -> bytes:
    """``TRACK GET <jid>`` (Faktory Enterprise)."""
    return b"TRACK GET " + _token(jid, "jid") + _CRLF


def track_set(payload: Mapping[str, Any]) -> bytes:
    """``TRACK SET {...}`` (Faktory Enterprise)."""
    return _json_line(b"TRACK SET ", payload)


# -- reading (server role) ------------------------------------------------------------


class LineReader(ReceiveBuffer):
    """Incremental splitter of a byte stream into command lines.

    An unterminated line longer than ``max_line`` raises
    :class:`~werk.LineTooLongError` (the server answers and closes).
    """

    __slots__ = ()

    def __init__(self, max_line: int = MAX_COMMAND_LINE) -> None:
        super().__init__(max_line)

    def next_line(self) -> bytes | None:
        """The next complete line without its terminator, or None if none is complete."""
        buf = self._buf
        pos = self._pos
        nl = buf.find(b"\n", self._scan)
        if nl < 0:
            self._scan = len(buf)
            if len(buf) - pos > self.max_line + 1:  # + 1: a CR may await its LF
                raise self._too_long()
            return None
        end = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl
        if end - pos > self.max_line:  # the cap is on the line, not its terminator
            raise self._too_long()
        line = bytes(buf[pos:end])
        self._consume(nl + 1)
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

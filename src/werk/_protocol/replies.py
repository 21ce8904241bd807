"""What a reply means: a command line paired with the reader of its reply.

A :class:`Request` is everything a client method decides without I/O: the line to send,
how long the server may take (``blocking``: FETCH may wait 2 s), which jobs the line
carries (for the error that says they may have been stored), and the reader that turns
the reply into the method's value or its typed error. The readers are pure functions of
``(reply, request)``; an error reply always becomes :meth:`ErrorReply.to_exception
<werk._protocol.resp.ErrorReply.to_exception>`, anything else the command cannot answer a
:class:`~werk.RemoteProtocolError` that names the command.

Example::

    >>> request = Request(b"FLUSH\\r\\n", ok)
    >>> request.read("OK", request) is None
    True
    >>> request.read(ErrorReply("ERR", "shutdown in progress"), request)
    Traceback (most recent call last):
    ...
    werk.ShutdownInProgressError: ERR shutdown in progress
    >>> json_object(b'{"faktory":{}}', Request(b"INFO\\r\\n", json_object))
    {'faktory': {}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from werk._errors import ConnectError, NetworkError, NotUniqueError, RemoteProtocolError
from werk._job import Job
from werk._protocol.jsonc import loads
from werk._protocol.resp import ErrorReply, Reply

__all__ = [
    "BeatState",
    "Request",
    "beat_state",
    "fetched_job",
    "fetched_payload",
    "json_object",
    "latency",
    "ok",
    "pushed_jid",
    "raw",
    "text",
    "unexpected",
]

T = TypeVar("T")
BeatState = Literal["quiet", "terminate"]
"""What BEAT reports and what the server may ask of a worker (None: keep running)."""

# Verbs whose second word is part of the command's name (QUEUE PAUSE, BATCH NEW, ...).
_TWO_WORD_VERBS = (b"QUEUE", b"BATCH", b"TRACK")


class Request(Generic[T]):
    """A command line and how to read its reply.

    ``read(reply, request)`` returns the value or raises; ``jids`` are the jobs the line
    carries; ``blocking`` allows for the server's FETCH wait.
    """

    __slots__ = ("blocking", "jids", "line", "read")

    def __init__(
        self,
        line: bytes,
        read: Callable[[Reply, Request[Any]], T],
        jids: Sequence[str] = (),
        blocking: bool = False,
    ) -> None:
        self.line = line
        self.read = read
        self.jids = jids
        self.blocking = blocking

    @property
    def what(self) -> str:
        """The command's name for messages: ``PUSH``, ``QUEUE PAUSE``..."""
        words = self.line.rstrip(b"\r\n").split(b" ", 2)
        name = words[:2] if words[0] in _TWO_WORD_VERBS else words[:1]
        return b" ".join(name).decode("utf-8", "replace")

    def failed(self, error: NetworkError, sent: bool) -> NetworkError:
        """``error`` (the connection failed) annotated with what may have become of the
        command: see :class:`werk.NetworkError`. ``sent``: whether any of the line was
        written."""
        if sent and isinstance(error, ConnectError):
            return error  # admission refused after the line went out: the server read nothing
        error.command_sent = sent
        jids = self.jids
        if jids and sent:
            error.unknown_jids = tuple(jids)
            error.args = (
                f"{error}; the server may have stored {len(jids)} job(s) before the failure "
                f"(jid {jids[0]}{', ...' if len(jids) > 1 else ''}): check before pushing again",
            )
        elif jids:
            error.args = (f"{error}; nothing was sent",)
        return error

    def __repr__(self) -> str:
        return f"<Request {self.line[:60]!r} read={self.read.__name__}>"


def unexpected(reply: Reply, what: str) -> Exception:
    """The exception for a reply that does not answer ``what``: the server's error, or a
    RemoteProtocolError when the server said something that makes no sense here."""
    if isinstance(reply, ErrorReply):
        return reply.to_exception()
    return RemoteProtocolError(f"unexpected reply to {what}: {reply!r:.200}")


def raw(reply: Reply, request: Request[Any]) -> Reply:
    """The reply itself, error replies included (as values)."""
    return reply


def ok(reply: Reply, request: Request[Any]) -> None:
    """``+OK`` (simple or bulk) or raise."""
    if reply == "OK" or reply == b"OK":
        return
    raise unexpected(reply, request.what)


def pushed_jid(reply: Reply, request: Request[Any]) -> str:
    """PUSH's ``+OK``: the jid of the pushed job (a refused duplicate raises
    :class:`~werk.NotUniqueError` carrying it)."""
    if reply == "OK":
        return request.jids[0]
    error = unexpected(reply, request.what)
    if isinstance(error, NotUniqueError):
        error.jid = request.jids[0]
    raise error


def _json(reply: Reply, what: str) -> Any:
    if isinstance(reply, (bytes, str)):
        try:
            return loads(reply)
        except ValueError:
            raise RemoteProtocolError(f"{what} replied with invalid JSON: {reply!r:.200}") from None
    raise unexpected(reply, what)


def json_object(reply: Reply, request: Request[Any]) -> dict[str, Any]:
    """A JSON object (INFO, BATCH STATUS, TRACK GET)."""
    data = _json(reply, request.what)
    if not isinstance(data, dict):
        raise RemoteProtocolError(
            f"{request.what} replied with JSON that is not an object: {reply!r:.200}"
        )
    return data


def text(reply: Reply, request: Request[Any]) -> str:
    """A plain string, simple or bulk (a batch id)."""
    if isinstance(reply, str):
        return reply
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    raise unexpected(reply, request.what)


def fetched_payload(reply: Reply) -> dict[str, Any] | None:
    """FETCH's reply as the job's JSON object, or None for ``$-1`` (error replies raise).

    Example::

        >>> fetched_payload(b'{"jid":"0123456789abcdef","jobtype":"T","args":[]}')["jobtype"]
        'T'
    """
    if reply is None:
        return None
    data = _json(reply, "FETCH")
    if not isinstance(data, dict) or not isinstance(data.get("jid"), str):
        raise RemoteProtocolError(f"FETCH returned something that is not a job: {reply!r:.200}")
    return data


def fetched_job(reply: Reply, request: Request[Any]) -> Job | None:
    """FETCH's reply: a job, or None for ``$-1``."""
    if reply is None:
        return None
    if type(reply) is bytes:  # the per-job path: a job's JSON
        try:
            data = loads(reply)
        except ValueError:
            data = None
        if type(data) is dict and type(data.get("jid")) is str:
            try:
                return Job.from_dict(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise RemoteProtocolError(f"FETCH returned a malformed job: {exc}") from None
    data = fetched_payload(reply)  # says what is wrong with it
    try:
        return Job.from_dict(data)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise RemoteProtocolError(f"FETCH returned a malformed job: {exc}") from None


def beat_state(reply: Reply, request: Request[Any]) -> BeatState | None:
    """BEAT's reply: None while running, else ``"quiet"`` or ``"terminate"``."""
    if reply == "OK" or reply == b"OK":
        return None
    data = _json(reply, "BEAT")
    state = data.get("state") if isinstance(data, dict) else None
    if state == "quiet" or state == "terminate":
        return state  # type: ignore[no-any-return]
    raise unexpected(reply, "BEAT")


def latency(reply: Reply, request: Request[Any]) -> dict[str, float]:
    """QUEUE LATENCY's reply: queue name -> seconds."""
    data = _json(reply, "QUEUE LATENCY")
    try:
        if isinstance(data, dict):
            return {str(k): float(v) for k, v in data.items()}
    except (TypeError, ValueError):
        pass
    raise unexpected(reply, "QUEUE LATENCY")

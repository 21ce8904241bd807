"""The client's side of one Faktory connection, as pure code (in the manner of h11's
``Connection``): bytes in, replies out, no sockets.

The blocking client, the asyncio client and the worker's report-and-fetch only move bytes
between a socket and a :class:`ClientSession`; the session says what they mean:

* the handshake: the greeting (``+HI``, maybe with a salt), the ``HELLO`` that answers it
  (with the password hash) and its ``+OK``;
* which reply answers which command: replies come in order, so each command in flight
  leaves a *token* (whatever the I/O layer needs to hand the reply on: a future, or
  nothing) and each reply is paired with the oldest;
* when the conversation is over: after the error replies on which the server hangs up,
  after an admission refused (``-ERR too many connections`` right after ``+OK``: nothing
  was run), on bytes that are not RESP, and when the I/O layer reports the connection lost.
  From then on every command still in flight fails with the same error.

Its life::

    greeting due --hello()--> HELLO sent --welcome()--> open --> closed (error is set)

Example::

    >>> s = ClientSession("tcp://localhost:7419", hostname="h", pid=7)
    >>> s.expect("greeting")
    >>> s.receive_data(b'+HI {"v":2}\\r\\n')
    >>> _, greeting = s.next_reply()
    >>> s.send(s.hello(greeting), "hello")
    b'HELLO {"hostname":"h","pid":7,"v":2}\\r\\n'
    >>> s.welcome(s.feed_and_read(b"+OK\\r\\n")[1])
    >>> s.send(b"FLUSH\\r\\n", "flush") and s.send(b"INFO\\r\\n", "info")
    b'INFO\\r\\n'
    >>> s.feed_and_read(b"-ERR shutdown in progress\\r\\n")
    ('flush', ErrorReply('ERR', 'shutdown in progress'))
    >>> s.error
    ConnectionClosedError('tcp://localhost:7419 closed the connection after -ERR shutdown...')
    >>> s.lose(s.error)
    ['info']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, Generic, TypeVar

from werk._errors import (
    ConnectError,
    ConnectionClosedError,
    FaktoryError,
    LocalProtocolError,
    NetworkTimeout,
    RemoteProtocolError,
)
from werk._protocol import command_lines
from werk._protocol.handshake import hello_payload, parse_greeting
from werk._protocol.replies import unexpected
from werk._protocol.resp import (
    INVALID_PASSWORD,
    MAX_BULK_REPLY,
    MAX_REPLY_LINE,
    NEED_DATA,
    SHUTDOWN_IN_PROGRESS,
    TOO_MANY_CONNECTIONS,
    ErrorReply,
    Reply,
    ReplyReader,
    _NeedData,
)

__all__ = ["ClientSession", "closed_after", "closes_connection", "timed_out"]

T = TypeVar("T")

_GREETING: Final = "greeting due"
_HELLO: Final = "HELLO sent"
_OPEN: Final = "open"


def closes_connection(reply: ErrorReply) -> bool:
    """True for the error replies after which the server hangs up.

    Example::

        >>> closes_connection(ErrorReply("ERR", "Job not found 0123456789abcdef"))
        False
    """
    if reply.code != "ERR":
        return False
    message = reply.message
    return message in (SHUTDOWN_IN_PROGRESS, INVALID_PASSWORD) or message.startswith(
        TOO_MANY_CONNECTIONS
    )


def closed_after(where: str, reply: ErrorReply) -> ConnectionClosedError:
    """The error for the server hanging up after ``reply`` (see :func:`closes_connection`).

    Example::

        >>> closed_after("tcp://h:7419", ErrorReply("ERR", "shutdown in progress"))
        ConnectionClosedError('tcp://h:7419 closed the connection after -ERR shutdown in progress')
    """
    return ConnectionClosedError(
        f"{where} closed the connection after -{reply.code} {reply.message}"
    )


def timed_out(doing: str, seconds: float) -> NetworkTimeout:
    """The error for ``doing`` something that got no answer in time.

    Example::

        >>> timed_out("connecting to tcp://h:7419", 5.0)
        NetworkTimeout('connecting to tcp://h:7419: no answer within 5 s')
    """
    return NetworkTimeout(f"{doing}: no answer within {seconds:g} s")


class ClientSession(Generic[T]):
    """One connection's conversation, client side. ``where`` names the server in messages;
    the keywords are what ``HELLO`` says (see :func:`~werk._protocol.handshake.hello_payload`).

    ``pending`` holds the tokens of the commands in flight, oldest first; ``error`` is set
    once the conversation is over.
    """

    __slots__ = ("_hello_fields", "_reader", "_state", "error", "pending", "where")

    def __init__(
        self,
        where: str,
        *,
        hostname: str | None,
        pid: int | None,
        wid: str | None = None,
        labels: Sequence[str] = (),
        password: str | None = None,
        username: str | None = None,
        max_line: int = MAX_REPLY_LINE,
        max_bulk: int = MAX_BULK_REPLY,
    ) -> None:
        self.where = where
        self._hello_fields = {
            "hostname": hostname,
            "pid": pid,
            "wid": wid,
            "labels": tuple(labels),
            "password": password,
            "username": username,
        }
        self._reader = ReplyReader(max_bulk, max_line)
        self._state = _GREETING
        self.pending: deque[T] = deque()
        self.error: FaktoryError | None = None

    def __repr__(self) -> str:
        state = "closed" if self.error is not None else self._state
        return f"<ClientSession {self.where} {state}, {len(self.pending)} in flight>"

    @property
    def ready(self) -> bool:
        """True once ``+OK`` answered HELLO, until the conversation is over."""
        return self._state is _OPEN and self.error is None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read as replies."""
        reader = self._reader
        return len(reader._buf) - reader._pos

    # -- the handshake ----------------------------------------------------------------------

    def expect(self, token: T) -> None:
        """A reply is due that answers no command of ours: the greeting."""
        self.pending.append(token)

    def hello(self, greeting: Reply) -> bytes:
        """The ``HELLO`` line that answers the server's greeting.

        Raises the server's error if it greeted with one, a RemoteProtocolError for a
        greeting that is not ``HI``, and AuthenticationError when the server wants a
        password and none was given (rather than send a HELLO that must fail).
        """
        if self._state is not _GREETING:
            raise LocalProtocolError("HELLO answers the greeting, once")
        try:
            if isinstance(greeting, ErrorReply):
                raise greeting.to_exception()
            payload = hello_payload(parse_greeting(greeting), **self._hello_fields)  # type: ignore[arg-type]
        except FaktoryError as exc:
            self.error = exc
            raise
        self._state = _HELLO
        return command_lines.hello(payload)

    def welcome(self, reply: Reply) -> None:
        """Read HELLO's reply: ``+OK`` opens the session; anything else raises (an error
        reply as its typed error, e.g. AuthenticationError) and ends it."""
        if self._state is not _HELLO:
            raise LocalProtocolError("welcome() reads the reply to HELLO, once")
        if reply == "OK" and self.error is None:
            self._state = _OPEN
            return
        error = unexpected(reply, "HELLO")
        if self.error is None and isinstance(error, FaktoryError):
            self.error = error
        raise error

    # -- commands and replies ---------------------------------------------------------------

    def send(self, line: bytes, token: T) -> bytes:
        """Note a command going out (its reply will carry ``token``); returns the line."""
        self.pending.append(token)
        return line

    def send_many(self, lines: Sequence[bytes], tokens: Iterable[T]) -> bytes:
        """:meth:`send` for several lines written at once; returns their bytes."""
        self.pending.extend(tokens)
        return b"".join(lines)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes from the server (copied: the caller may reuse its buffer)."""
        self._reader.feed(data)

    def next_reply(self) -> tuple[T, Reply] | _NeedData:
        """The next reply with the token of the command it answers, or NEED_DATA.

        An error reply is a value (the caller's reader raises it); after one on which the
        server hangs up, the session is over. Raises (and ends the session) when no reply
        will come: ConnectError for an admission refused, RemoteProtocolError for bytes
        that break the protocol, the session's ``error`` once it is over.
        """
        return self.feed_and_read(b"")

    def feed_and_read(self, data: bytes | bytearray | memoryview) -> tuple[T, Reply] | _NeedData:
        """:meth:`receive_data` then :meth:`next_reply`: the per-command path (a lone
        ``+OK`` is read without buffering it)."""
        if self.error is not None:
            raise self.error
        try:
            reply = self._reader.feed_and_read(data)
            if reply is NEED_DATA:
                return NEED_DATA
            if type(reply) is ErrorReply and closes_connection(reply):
                self._closing(reply)
            return self.pending.popleft(), reply  # type: ignore[return-value]
        except RemoteProtocolError as exc:
            self.error = exc
            raise
        except IndexError:
            self.error = RemoteProtocolError(f"a reply nobody asked for: {reply!r:.200}")
            raise self.error from None

    def _closing(self, reply: ErrorReply) -> None:
        # ``reply`` is one after which the server hangs up: the session ends with it.
        if self._state is _OPEN and reply.message.startswith(TOO_MANY_CONNECTIONS):
            # Faktory 1.9+ beyond its connection limit: +OK to HELLO, then this error
            # before it reads any command, and a hang-up. A refused connection.
            refused = ConnectError(
                f"the server refused the connection ({reply.message}) before reading "
                "any command: nothing was run"
            )
            refused.__cause__ = reply.to_exception()
            self.error = refused
            raise refused
        self.error = closed_after(self.where, reply)

    # -- the end ----------------------------------------------------------------------------

    def hung_up(self) -> ConnectionClosedError:
        """The error for the server closing the connection now (the I/O layer saw its end)."""
        if self._state is _OPEN:
            return ConnectionClosedError(f"{self.where} closed the connection")
        return ConnectionClosedError(
            f"{self.where} closed the connection during the handshake (is it a Faktory "
            "server, does it want TLS, or did it refuse our HELLO?)"
        )

    def lose(self, error: FaktoryError) -> list[T]:
        """The conversation is over (the connection broke, timed out or was closed): the
        session keeps its first ``error``; returns the tokens of the commands that will
        never be answered, oldest first."""
        if self.error is None:
            self.error = error
        tokens = list(self.pending)
        self.pending.clear()
        return tokens

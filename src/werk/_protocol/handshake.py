"""The HI / HELLO handshake, both roles.

The server greets with ``+HI {"v":2}`` (plus ``"i"`` iterations and ``"s"`` salt when it
wants a password); the client answers ``HELLO {...}`` carrying ``pwdhash`` when asked;
the server replies ``+OK`` or ``-ERR Invalid password`` and closes.

Example (client role)::

    >>> g = parse_greeting('HI {"v":2,"i":3,"s":"5f2a9c"}')
    >>> hello_payload(g, password="s3cret")["pwdhash"][:16]
    'da6e25ca9967b839'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from werk._errors import AuthenticationError, RemoteProtocolError

__all__ = [
    "Greeting",
    "HandshakeRejected",
    "Hello",
    "check_password",
    "hello_payload",
    "parse_greeting",
    "parse_hello",
    "password_hash",
]

PROTOCOL_VERSION = 2


def password_hash(password: str, salt: str, iterations: int) -> str:
    """Faktory's password hash: SHA-256 of password+salt, re-hashed ``iterations - 1`` times.

    The salt is used as its hex *text*; the re-hashing runs over the raw 32-byte digest; the
    result is lowercase hex. ``iterations <= 1`` means a single application.

    Example::

        >>> password_hash("s3cret", "5f2a9c", 1)
        '64128b478ad3f8d12c660adc833ea08f2b0b51bda9b4177ad85705a4882da830'
    """
    sha = hashlib.sha256
    d = sha((password + salt).encode("utf-8")).digest()
    for _ in range(iterations - 1):
        d = sha(d).digest()
    return d.hex()


@dataclass(frozen=True)
class Greeting:
    """The server's ``HI``: protocol version and, when a password is required, iterations and salt.

    Example::

        >>> Greeting().encode()
        b'+HI {"v":2}\\r\\n'
    """

    version: int = PROTOCOL_VERSION
    iterations: int | None = None
    salt: str | None = None

    @property
    def password_required(self) -> bool:
        """True when the server asked for a ``pwdhash``."""
        return self.salt is not None

    @classmethod
    def new(cls, password_required: bool) -> Greeting:
        """A fresh greeting (server role): random iterations in [4000, 8095] and a fresh salt."""
        if not password_required:
            return cls()
        iterations = 4000 + secrets.randbelow(4096)
        salt = format(secrets.randbits(63), "x")
        return cls(PROTOCOL_VERSION, iterations, salt)

    def encode(self) -> bytes:
        """The greeting line as the real server writes it."""
        if self.salt is None:
            return b'+HI {"v":%d}\r\n' % self.version
        return b'+HI {"v":%d,"i":%d,"s":"%s"}\r\n' % (
            self.version,
            self.iterations or 1,
            self.salt.encode(),
        )


def parse_greeting(reply: object) -> Greeting:
    """Read the ``HI`` reply (client role); raise RemoteProtocolError for anything else.

    ``reply`` is what :class:`~werk._protocol.resp.ReplyReader` returned for the first line.
    A password-less server sends no ``s``/``i``.
    """
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    if not isinstance(reply, str) or not reply.startswith("HI "):
        raise RemoteProtocolError(f"expecting HI but got: {reply!r}")
    try:
        data = json.loads(reply[3:])
    except ValueError:
        data = None
    if isinstance(data, dict):
        version, iterations, salt = data.get("v", PROTOCOL_VERSION), data.get("i"), data.get("s")
        if (
            isinstance(version, int)
            and (iterations is None or isinstance(iterations, int))
            and (salt is None or isinstance(salt, str))
        ):
            return Greeting(version, iterations, salt)
    raise RemoteProtocolError(f"malformed HI greeting: {reply!r}")


def hello_payload(
    greeting: Greeting,
    *,
    password: str | None = None,
    wid: str | None = None,
    hostname: str | None = None,
    pid: int | None = None,
    labels: list[str] | tuple[str, ...] = (),
    username: str | None = None,
) -> dict[str, Any]:
    """The JSON object of the client's ``HELLO`` (client role).

    Producers pass no ``wid``; workers pass their process-wide ``wid`` with hostname, pid
    and labels. Raises :class:`~werk.AuthenticationError` when the server wants a
    password and none was given (rather than sending a HELLO that must fail).
    """
    # Key order follows the reference client (hostname, wid, pid, labels, v, pwdhash) so a
    # HELLO built here is byte-identical to the recorded ones.
    fields = {
        "hostname": hostname,
        "wid": wid or None,
        "pid": pid,
        "labels": list(labels) if wid or labels else None,  # a worker's, even when empty
        "v": PROTOCOL_VERSION,
        "username": username or None,
    }
    payload = {key: value for key, value in fields.items() if value is not None}
    if greeting.salt is not None:
        if password is None:
            raise AuthenticationError(
                "ERR", "Server requires a password: set it in FAKTORY_URL or pass password="
            )
        payload["pwdhash"] = password_hash(password, greeting.salt, greeting.iterations or 1)
    return payload


class HandshakeRejected(RemoteProtocolError):
    """The first line is not an acceptable HELLO (server role): close without a reply."""


@dataclass
class Hello:
    """A decoded client ``HELLO`` (server role)."""

    v: int | None = None
    wid: str = ""
    hostname: str = ""
    pid: int = 0
    labels: list[str] = field(default_factory=list)
    pwdhash: str = ""
    username: str = ""
    rss_kb: int = 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_STRING_FIELDS = ("wid", "hostname", "pwdhash", "username")
_INT_FIELDS = ("pid", "rss_kb")


def parse_hello(line: bytes) -> Hello:
    """Decode the first line of a connection as the real server does (server role).

    The line must start with exactly ``HELLO {``; the JSON must match the Go struct's
    types (string ``wid``/``hostname``, integer ``pid``, string-array ``labels``, ``v`` in
    0..255). Unknown keys are ignored and ``null`` leaves a field at its default. Anything
    else raises :class:`HandshakeRejected`.
    """
    if not line.startswith(b"HELLO {"):
        raise HandshakeRejected("first line is not HELLO {...}")
    try:
        data = json.loads(line[6:])
    except ValueError as exc:
        raise HandshakeRejected(f"invalid HELLO JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HandshakeRejected("HELLO payload is not an object")
    hello = Hello()
    for key in _STRING_FIELDS:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise HandshakeRejected(f"HELLO field {key} must be a string")
        setattr(hello, key, value)
    for key in _INT_FIELDS:
        value = data.get(key)
        if value is None:
            continue
        if not _is_int(value):
            raise HandshakeRejected(f"HELLO field {key} must be an integer")
        setattr(hello, key, value)
    version = data.get("v")
    if version is not None:
        if not _is_int(version) or not 0 <= version <= 255:
            raise HandshakeRejected("HELLO field v must be an integer 0..255")
        hello.v = version
    labels = data.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) or x is None for x in labels):
            raise HandshakeRejected("HELLO field labels must be an array of strings")
        hello.labels = [x or "" for x in labels]
    return hello


def check_password(hello: Hello, greeting: Greeting, password: str) -> bool:
    """True when ``hello.pwdhash`` proves the password (server role), compared in constant time.

    A HELLO with ``v`` below 2 (or absent) is checked against a single SHA-256, as the real
    server does for legacy clients.
    """
    if greeting.salt is None:
        return True
    iterations = greeting.iterations or 1
    if hello.v is None or hello.v < 2:
        iterations = 1
    expected = password_hash(password, greeting.salt, iterations)
    return hmac.compare_digest(expected.encode(), hello.pwdhash.encode("utf-8", "replace"))

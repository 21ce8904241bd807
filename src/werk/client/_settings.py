"""A client's settings: where the server is (URL, password, TLS) and how to talk to it.

URL resolution (as the reference client): the ``url`` argument, else the variable that
``FAKTORY_PROVIDER`` names, else ``FAKTORY_URL``, else ``tcp://localhost:7419``.
``tcp://[username][:password@]host[:port]`` is plain TCP; ``tcp+tls://...`` is TLS with
certificate and host name verification (``ssl.create_default_context()``) unless the
caller passes their own ``ssl.SSLContext``. A missing port means 7419.

:class:`ClientSettings` holds the resolved and checked arguments of a client (every
connection the client opens uses them); :func:`configured_by` gives
:class:`~werk.Client` and :class:`~werk.AsyncClient` its constructor's signature, so the
arguments are listed once.
"""

from __future__ import annotations

import inspect
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Concatenate, Final, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

from werk._errors import ConfigurationError
from werk._protocol.session import ClientSession

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "FETCH_BLOCK",
    "ClientSettings",
    "Endpoint",
    "configured_by",
    "parse_url",
    "resolve_url",
    "ssl_context_for",
]

P = ParamSpec("P")
S = TypeVar("S")

DEFAULT_PORT: Final = 7419
DEFAULT_URL: Final = "tcp://localhost:7419"

_PROVIDER_HINT: Final = (
    "FAKTORY_PROVIDER is not a URL: it is the name of the environment variable that holds "
    "the URL, e.g. FAKTORY_PROVIDER=FOO_URL and FOO_URL=tcp://:password@faktory.example.com:7419"
)


@dataclass(frozen=True)
class Endpoint:
    """A parsed server URL.

    ``password`` and ``username`` are URL-decoded (``None`` when absent). ``str()`` hides
    the password, so an endpoint is safe to log.

    Example::

        >>> str(parse_url("tcp://:pw@localhost"))
        'tcp://:***@localhost:7419'
    """

    host: str
    port: int = DEFAULT_PORT
    tls: bool = False
    password: str | None = None
    username: str | None = None

    def __str__(self) -> str:
        scheme = "tcp+tls" if self.tls else "tcp"
        user = self.username or ""
        auth = f"{user}:***@" if self.password is not None else (f"{user}@" if user else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}"


def resolve_url(url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The URL to use: ``url``, else ``$FAKTORY_PROVIDER``'s variable, else ``$FAKTORY_URL``.

    Raises :class:`~werk._errors.ConfigurationError` when ``FAKTORY_PROVIDER`` holds a URL
    (contains ``:``) or names a variable that is not set.

    Example::

        >>> resolve_url(environ={"FAKTORY_PROVIDER": "FOO_URL", "FOO_URL": "tcp://f:7419"})
        'tcp://f:7419'
    """
    if url:
        return url
    env = os.environ if environ is None else environ
    provider = env.get("FAKTORY_PROVIDER")
    if provider:
        if ":" in provider:
            raise ConfigurationError(_PROVIDER_HINT)
        value = env.get(provider)
        if not value:
            raise ConfigurationError(f"FAKTORY_PROVIDER set to invalid value: {provider}")
        return value
    return env.get("FAKTORY_URL") or DEFAULT_URL


def parse_url(url: str) -> Endpoint:
    """Parse ``tcp://`` or ``tcp+tls://`` URLs; anything else raises ConfigurationError.

    Example::

        >>> parse_url("tcp://[::1]:7500").host
        '::1'
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a Faktory URL is a string, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"invalid Faktory URL {_redact(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("tcp", "tcp+tls"):
        raise ConfigurationError(
            f"invalid Faktory URL {_redact(url)!r}: the scheme must be tcp:// or tcp+tls://"
        )
    if not parts.hostname:
        raise ConfigurationError(f"invalid Faktory URL {_redact(url)!r}: no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"invalid Faktory URL {_redact(url)!r}: no path, query or fragment is allowed"
        )
    password = unquote(parts.password) if parts.password is not None else None
    username = unquote(parts.username) if parts.username else None
    return Endpoint(
        host=parts.hostname,
        port=DEFAULT_PORT if port is None else port,
        tls=scheme == "tcp+tls",
        password=password,
        username=username,
    )


def ssl_context_for(
    endpoint: Endpoint, ssl_context: ssl.SSLContext | None
) -> ssl.SSLContext | None:
    """The TLS context for ``endpoint``: the caller's, else a verifying default, else None.

    A context passed for a plain ``tcp://`` URL turns TLS on (the caller asked for it).
    The default context verifies the certificate chain and the host name; to trust a private
    CA use ``ssl.create_default_context(cafile=...)``; to skip verification (not advised)
    pass a context with ``check_hostname = False`` and ``verify_mode = ssl.CERT_NONE``.
    """
    if ssl_context is not None:
        return ssl_context
    if endpoint.tls:
        return ssl.create_default_context()
    return None


def _redact(url: str) -> str:
    # Never echo a password back in an error message.
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, colon, userinfo = head.partition("://")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{colon}{user}:***@{tail}"


DEFAULT_TIMEOUT: Final = 5.0
"""Seconds allowed to connect, to write a command, and to wait for its reply (the default
of every werk client, the worker's included)."""
FETCH_BLOCK: Final = 2.0
"""How long the server may hold a FETCH open before answering ``$-1``."""


class ClientSettings:
    """The checked arguments of a client, shared by every connection it opens.

    ``url`` (else ``FAKTORY_PROVIDER``/``FAKTORY_URL``, else ``tcp://localhost:7419``)
    names the server; ``password`` overrides the one in the URL. Producers leave ``wid``
    unset; a worker process passes its ``wid`` (and ``labels``) on every connection.
    ``timeout`` bounds connecting (unless ``connect_timeout`` is given), each write and each
    reply (FETCH gets 2 s more, for the server's blocking wait). ``tcp+tls://`` verifies
    certificates unless ``ssl_context`` says otherwise; a context given for ``tcp://`` turns
    TLS on. ``hostname`` defaults to this machine's. Bad values raise
    :class:`~werk.ConfigurationError`.

    Example::

        >>> s = ClientSettings("tcp://:pw@localhost", hostname="h")
        >>> (s.endpoint.port, s.endpoint.password, s.wid, s.fetch_timeout)
        (7419, 'pw', None, 7.0)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        password: str | None = None,
        wid: str | None = None,
        labels: Iterable[str] = (),
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        hostname: str | None = None,
    ) -> None:
        endpoint = parse_url(resolve_url(url))
        if password is not None:
            if not isinstance(password, str):
                raise ConfigurationError(
                    f"password must be a string, got {type(password).__name__}"
                )
            endpoint = replace(endpoint, password=password)
        if wid is not None and (not isinstance(wid, str) or not wid or " " in wid):
            raise ConfigurationError(f"wid must be a non-empty word, got {wid!r}")
        for name, seconds in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if seconds is not None and not _positive(seconds):
                raise ConfigurationError(f"{name} must be a number of seconds > 0, got {seconds!r}")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ConfigurationError(f"ssl_context must be an ssl.SSLContext, got {ssl_context!r}")
        self.endpoint: Endpoint = endpoint
        self.ssl_context = ssl_context_for(endpoint, ssl_context)
        self.wid = wid
        # The server decodes HELLO into typed fields and silently hangs up on a mismatch
        # (labels must be an array of strings, hostname a string): refuse such values here.
        if isinstance(labels, (str, bytes)):
            raise ConfigurationError(f"labels must be a list of strings, not {labels!r}")
        self.labels: tuple[str, ...] = tuple(labels)
        if not all(isinstance(label, str) for label in self.labels):
            raise ConfigurationError(f"labels must be strings, got {self.labels!r}")
        if hostname is not None and not isinstance(hostname, str):
            raise ConfigurationError(f"hostname must be a string, got {hostname!r}")
        self.hostname = hostname or socket.gethostname()
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout or timeout)
        self.fetch_timeout = self.timeout + FETCH_BLOCK

    def __repr__(self) -> str:
        return f"<ClientSettings {self.endpoint} wid={self.wid!r}>"

    def session(self) -> ClientSession[Any]:
        """A fresh session for a new connection (it says HELLO with this process's pid)."""
        ep = self.endpoint
        return ClientSession(
            str(ep),
            hostname=self.hostname,
            pid=os.getpid(),
            wid=self.wid,
            labels=self.labels,
            password=ep.password,
            username=ep.username,
        )

    def require_wid(self) -> str:
        """The worker id, or ConfigurationError: BEAT is for worker processes."""
        if not self.wid:
            raise ConfigurationError("beat() needs a worker id: create the client with wid=...")
        return self.wid


def _positive(seconds: object) -> bool:
    return isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0


def configured_by(
    settings: Callable[P, ClientSettings],
) -> Callable[[Callable[[S, ClientSettings], None]], Callable[Concatenate[S, P], None]]:
    """Give a client class a constructor that takes what ``settings`` takes.

    The decorated ``__init__(self, settings)`` receives the checked settings; callers (and
    type checkers) see the arguments of :class:`ClientSettings`.
    """

    def decorate(init: Callable[[S, ClientSettings], None]) -> Callable[Concatenate[S, P], None]:
        def __init__(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
            init(self, settings(*args, **kwargs))

        signature = inspect.signature(settings)
        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        __init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[self_param, *signature.parameters.values()], return_annotation="None"
        )
        __init__.__qualname__ = init.__qualname__
        __init__.__doc__ = init.__doc__
        return __init__

    return decorate

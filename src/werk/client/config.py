"""Where the server is: URL resolution, the password in it, and TLS.

Resolution order (as the reference client): the ``url`` argument, else the variable that
``FAKTORY_PROVIDER`` names, else ``FAKTORY_URL``, else ``tcp://localhost:7419``.

``tcp://[username][:password@]host[:port]`` is plain TCP; ``tcp+tls://...`` is TLS with
certificate and host name verification (``ssl.create_default_context()``) unless the
caller passes their own ``ssl.SSLContext``. A missing port means 7419.

Example::

    >>> ep = parse_url("tcp+tls://:s3cr%40t@faktory.example.com")
    >>> (ep.host, ep.port, ep.tls, ep.password)
    ('faktory.example.com', 7419, True, 's3cr@t')
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from werk.errors import ConfigurationError

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "Endpoint",
    "parse_url",
    "resolve_url",
    "ssl_context_for",
]

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

    Raises :class:`~werk.errors.ConfigurationError` when ``FAKTORY_PROVIDER`` holds a URL
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

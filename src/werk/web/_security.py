"""Who may look and who may change: HTTP basic auth, CSRF protection, defensive headers.

* With a password, every request needs HTTP basic auth whose password matches (the user name
  is ignored, as with Faktory); anything else gets ``401`` and a ``WWW-Authenticate`` challenge.
* Every state-changing request is a POST and must come from these pages: a cross-site
  ``Sec-Fetch-Site``, or an ``Origin``/``Referer`` naming another host, gets ``403``; so does a
  form whose hidden ``csrf`` field does not match the per-browser ``werk_csrf`` cookie.
* Every response forbids framing and foreign scripts (``Content-Security-Policy``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "basic_auth", "csrf_protect", "csrf_token", "headers"]

CSRF_COOKIE = "werk_csrf"
CSRF_FIELD = "csrf"
# Typed request keys where aiohttp has them (3.12+), plain strings before.
_TOKEN_KEY: Any = getattr(web, "RequestKey", lambda name, _t: name)("werk.csrf_token", str)
_NEW_TOKEN_KEY: Any = getattr(web, "RequestKey", lambda name, _t: name)("werk.csrf_new", bool)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _password_of(header: str) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


def basic_auth(password: str | None) -> Middleware:
    """Middleware asking for HTTP basic auth with ``password`` (any user name); none if empty."""
    expected = (password or "").encode("utf-8")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not expected:
            return await handler(request)
        given = _password_of(request.headers.get("Authorization", ""))
        # compare_digest on bytes of different lengths is still constant-time in the content.
        if given is None or not hmac.compare_digest(given.encode("utf-8"), expected):
            return web.Response(
                status=401,
                text="401: this werk server needs its password (any user name will do)\n",
                headers={"WWW-Authenticate": 'Basic realm="werk", charset="UTF-8"'},
            )
        return await handler(request)

    return middleware


def csrf_token(request: web.Request) -> str:
    """The CSRF token of this browser, to put in each form's hidden ``csrf`` field."""
    token = request.get(_TOKEN_KEY)
    if isinstance(token, str):
        return token
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if len(cookie) >= 32 and cookie.isascii():
        token = cookie
    else:
        token = secrets.token_urlsafe(32)
        request[_NEW_TOKEN_KEY] = True
    request[_TOKEN_KEY] = token
    return token


def _same_origin(request: web.Request, url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.netloc) and parts.netloc.lower() == (request.host or "").lower()


def _cross_origin_reason(request: web.Request) -> str | None:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site}"
    origin = request.headers.get("Origin")
    if origin is not None:
        return None if _same_origin(request, origin) else f"Origin {origin} is not this site"
    referer = request.headers.get("Referer")
    if referer is not None and not _same_origin(request, referer):
        return "Referer is not this site"
    return None


@web.middleware
async def csrf_protect(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cross-site POSTs (403) and hand each browser its CSRF cookie."""
    if request.method not in _SAFE_METHODS:
        reason = _cross_origin_reason(request)
        if reason is None:
            form = await request.post()
            sent = form.get(CSRF_FIELD)
            cookie = request.cookies.get(CSRF_COOKIE)
            if not isinstance(sent, str) or not cookie:
                reason = "the form carries no CSRF token"
            elif not hmac.compare_digest(sent.encode(), cookie.encode()):
                reason = "the CSRF token does not match"
        if reason is not None:
            return web.Response(status=403, text=f"403: refused, {reason}\n")
    response = await handler(request)
    if request.get(_NEW_TOKEN_KEY):
        response.set_cookie(
            CSRF_COOKIE, request[_TOKEN_KEY], httponly=True, samesite="Strict", path="/"
        )
    return response


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Defensive response headers: no framing, no foreign scripts, no sniffing."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if isinstance(response, web.HTTPException):
        raise response
    return response

"""Fixtures for the web UI: a real werk server with its web UI on a second free port.

* ``web_ui``: server without a password; ``.url`` (http), ``.srv`` (the EmbeddedServer),
  ``.client()`` (a werk Client for it), ``.http`` helpers for plain HTTP.
* ``web_ui_password``: the same behind the server's password.
* ``browser``: Debian's Chromium driven by Playwright (one browser per test module). Without
  /usr/bin/chromium the browser tests skip, unless ``WERK_REQUIRE_BROWSER=1`` (CI), where
  they fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

import werk
from werk.server import EmbeddedServer
from werk.web import WebHandle, start_web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass
class Response:
    """A plain HTTP response: status, headers, decoded body."""

    status: int
    headers: dict[str, str]
    text: str


@dataclass
class WebUI:
    """A running server plus its web UI, with small HTTP helpers for tests."""

    srv: EmbeddedServer
    handle: WebHandle
    password: str | None = None
    jar: CookieJar = field(default_factory=CookieJar)

    @property
    def url(self) -> str:
        return self.handle.url

    def client(self, **options: Any) -> werk.Client:
        """A werk Client connected to the server's command port."""
        return werk.Client(self.srv.url_with_password, **options)

    def request(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        password: str | bool | None = True,
    ) -> Response:
        """GET (or POST ``data``) without following redirects; keeps cookies."""
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data, doseq=True).encode()
        req = urllib.request.Request(self.url + path, data=body, headers=headers or {})
        pw = self.password if password is True else password
        if pw:
            import base64

            token = base64.b64encode(f"ops:{pw}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        opener = urllib.request.build_opener(
            NoRedirect, urllib.request.HTTPCookieProcessor(self.jar)
        )
        try:
            with opener.open(req, timeout=10) as resp:
                return Response(resp.status, dict(resp.headers), resp.read().decode())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, dict(exc.headers), exc.read().decode())

    def csrf(self, path: str = "/") -> str:
        """Load a page (setting the CSRF cookie) and return the token of its forms."""
        page = self.request(path)
        assert page.status == 200, page.text
        match = _CSRF_RE.search(page.text)
        assert match is not None, "the page has no CSRF token"
        return match.group(1)

    def post(self, path: str, form: dict[str, Any], **kwargs: Any) -> Response:
        """POST a form the way the pages do (with this browser's CSRF token)."""
        data = {"csrf": self.csrf(), **form}
        return self.request(path, data=data, **kwargs)


def _start(srv: EmbeddedServer, password: str | None) -> WebHandle:
    # The web UI runs on the server's own event loop, as `werk server` runs it.
    coro = start_web(srv, "127.0.0.1", 0, password=password)
    return asyncio.run_coroutine_threadsafe(coro, srv.server.loop).result(30)


def _stop(srv: EmbeddedServer, handle: WebHandle) -> None:
    asyncio.run_coroutine_threadsafe(handle.close(), srv.server.loop).result(30)


@pytest.fixture
def web_ui(faktory_server: EmbeddedServer) -> Iterator[WebUI]:
    """A server without password and its web UI."""
    handle = _start(faktory_server, None)
    yield WebUI(faktory_server, handle)
    _stop(faktory_server, handle)


@pytest.fixture
def web_ui_password(faktory_server_password: EmbeddedServer) -> Iterator[WebUI]:
    """A server with a password; the web UI asks for the same password."""
    srv = faktory_server_password
    handle = _start(srv, srv.password)
    yield WebUI(srv, handle, password=srv.password)
    _stop(srv, handle)


def _browser_unavailable(reason: str) -> None:
    if os.environ.get("WERK_REQUIRE_BROWSER") == "1":
        pytest.fail(f"WERK_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        _browser_unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()

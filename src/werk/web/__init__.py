"""The operator web UI of werk's embedded server (Faktory's pages, on port 7420).

Dashboard, Queues, Busy, Scheduled, Retries and Dead, and the Enterprise features' pages
(Batches, Cron, Throttles; tracked jobs' progress on Busy and job pages), served by aiohttp
on the server's own event loop, reading the same state. Needs the ``web`` extra:
``pip install 'werk[web]'``. ``werk server`` serves it by itself; in your own program:

* :func:`start_web`: serve the pages of a running server, on the server's event loop.
* :func:`create_app`: the pages as an aiohttp application, to mount or run yourself.
* :class:`WebHandle`: where a started UI listens, and how to stop it.

Example (in asyncio code)::

    from werk.server import EmbeddedServer
    from werk.web import start_web

    async with EmbeddedServer() as srv:
        handle = await start_web(srv, host="127.0.0.1", port=7420, password=None)
        print("web UI at", handle.url)
        ...
        await handle.close()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from werk.web._app import build_app
from werk.web._server_backend import backend_for

__all__ = ["DEFAULT_WEB_PORT", "WebHandle", "create_app", "start_web"]

DEFAULT_WEB_PORT = 7420


@dataclass
class WebHandle:
    """A running web UI: where it listens, and how to stop it.

    Example::

        handle = await start_web(srv, port=0)     # 0: any free port
        print(handle.url)                        # http://127.0.0.1:54321
        await handle.close()
    """

    host: str
    port: int
    runner: web.AppRunner

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop listening and finish open requests."""
        await self.runner.cleanup()


def create_app(server: Any, password: str | None = None, title: str = "werk") -> web.Application:
    """The web UI of ``server`` (a running :class:`~werk.server.EmbeddedServer`) as an
    aiohttp application; run it on the server's event loop.

    With ``password``, every page asks for it by HTTP basic auth (any user name). The
    server's Prometheus metrics are at ``/metrics`` (with the ``metrics`` extra).

    Example::

        async with EmbeddedServer() as srv:
            runner = web.AppRunner(create_app(srv, password="s3cret"))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 7420).start()
    """
    app = build_app(backend_for(server), password=password, title=title)
    if hasattr(server, "manager") or hasattr(server, "server"):  # a server, not a backend
        _add_metrics_route(app, server)
    return app


def _add_metrics_route(app: web.Application, server: Any) -> None:
    # The server's Prometheus page, outside the pages' navigation, behind the same password;
    # without prometheus_client it says how to install it (503). The figures are made at the
    # first scrape: a server nobody scrapes times none of its commits.
    from werk.server._metrics import metrics_page

    async def metrics(request: web.Request) -> web.Response:
        status, body, ctype = metrics_page(server)
        response = web.Response(status=status, body=body)
        response.headers["Content-Type"] = ctype
        return response

    app.router.add_get("/metrics", metrics, name="metrics")


async def start_web(
    server: Any,
    host: str = "127.0.0.1",
    port: int = DEFAULT_WEB_PORT,
    password: str | None = None,
    *,
    title: str = "werk",
) -> WebHandle:
    """Serve the web UI of ``server`` (a running :class:`~werk.server.EmbeddedServer`) on
    the running event loop, which must be the server's; ``port=0`` picks a free one.

    With a ``password`` the pages ask for it by HTTP basic auth; bind beyond 127.0.0.1 only
    with one.

    Example::

        handle = await start_web(srv, "127.0.0.1", 7420, password="s3cret")
    """
    app = create_app(server, password=password, title=title)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    # The port actually bound (differs from ``port`` when it was 0).
    bound = next((addr[1] for addr in runner.addresses if isinstance(addr, tuple)), port)
    return WebHandle(host=host, port=int(bound), runner=runner)

"""The operator web UI of werk's embedded server (Faktory's pages, on port 7420).

Dashboard, Queues, Busy, Scheduled, Retries and Dead, served by aiohttp on the server's own
event loop, reading the same store. Needs the ``web`` extra: ``pip install 'werk[web]'``.

Example (inside the server's event loop)::

    from werk.web import start_web

    handle = await start_web(server, host="127.0.0.1", port=7420, password=None)
    print("web UI at", handle.url)
    ...
    await handle.close()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from werk.web.app import create_app
from werk.web.backend import WebBackend

__all__ = ["DEFAULT_WEB_PORT", "WebHandle", "backend_for", "create_app", "start_web"]

DEFAULT_WEB_PORT = 7420


@dataclass
class WebHandle:
    """A running web UI: where it listens, and how to stop it.

    Example::

        handle = await start_web(server, port=0)   # 0: any free port
        print(handle.url)                         # http://127.0.0.1:54321
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


def backend_for(server_or_backend: Any) -> WebBackend:
    """The :class:`WebBackend` of an embedded server (or the object itself if it is one).

    Example::

        backend = backend_for(srv)            # an EmbeddedServer, or a Server
        print(await backend.queues())
    """
    needed = ("stats", "queues", "set_entries", "mutate", "workers", "signal_workers")
    if all(callable(getattr(server_or_backend, name, None)) for name in needed):
        backend: WebBackend = server_or_backend
        return backend
    from werk.web.server_backend import ServerBackend

    return ServerBackend(server_or_backend)


async def start_web(
    server: Any,
    host: str = "127.0.0.1",
    port: int = DEFAULT_WEB_PORT,
    password: str | None = None,
    *,
    title: str = "werk",
) -> WebHandle:
    """Serve the web UI for ``server`` on the running event loop; ``port=0`` picks a free one.

    ``server`` is werk's embedded server (or anything :func:`backend_for` accepts). With a
    ``password`` the pages ask for it by HTTP basic auth; bind beyond 127.0.0.1 only with one.

    Example::

        handle = await start_web(server, "127.0.0.1", 7420, password="s3cret")
    """
    app = create_app(backend_for(server), password=password, title=title)
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

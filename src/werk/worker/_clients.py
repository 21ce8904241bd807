"""The one rule for the connections that :meth:`werk.App.client` and
:meth:`werk.Worker.client` hand out: one per thread, opened on first use, reused.

A job that pushes jobs, or a web request handler that pushes, calls ``client()`` every time
and pays for a connection once per thread. Closing the client a thread got is allowed (its
next call reconnects); the owner (``App.close()``, or the worker when it stops) closes them
all and forgets them, and the next ``client()`` call opens a new one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from werk.client import Client

__all__ = ["ThreadClients"]


class ThreadClients:
    """Connections made by ``connect()``, one per thread."""

    def __init__(self, connect: Callable[[], Client]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._all: list[Client] = []
        self._lock = threading.Lock()

    def get(self) -> Client:
        """This thread's client (made on first use; it connects on its first command)."""
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._connect()
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        """Close every client handed out (with END) and forget them."""
        with self._lock:
            clients, self._all = self._all, []
            self._local = threading.local()
        for client in clients:
            client.close()

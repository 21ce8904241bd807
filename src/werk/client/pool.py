"""Pools of clients for many producers: one connection per concurrent user.

Example (threads)::

    pool = werk.ClientPool(size=8)
    with pool.acquire() as client:          # blocks while all 8 are in use
        client.push("Resize", 42)
    pool.push("Resize", 43)                 # the same, in one call
    pool.close()

Example (asyncio)::

    async with werk.AsyncClientPool(size=4) as pool:
        async with pool.acquire() as client:
            await client.fetch("default")

Clients are created lazily. A client whose connection broke is still handed out: it
reconnects on its next call. ``acquire`` waits at most ``acquire_timeout`` seconds
(``None``: forever), then raises :class:`werk.NetworkTimeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from werk.client.aio import AsyncClient
from werk.client.sync import Client
from werk.errors import ConfigurationError, NetworkTimeout
from werk.job import Job

__all__ = ["AsyncClientPool", "ClientPool"]


def _check_size(size: int) -> int:
    if not isinstance(size, int) or size < 1:
        raise ConfigurationError(f"pool size must be a positive int, got {size!r}")
    return size


class ClientPool:
    """A thread-safe pool of :class:`werk.Client`; ``options`` are passed to each client.

    Example::

        pool = werk.ClientPool("tcp://faktory:7419", size=16, timeout=3)
        with pool.acquire() as client:
            client.push("Resize", 42)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        size: int = 10,
        acquire_timeout: float | None = None,
        **options: Any,
    ) -> None:
        self.size = _check_size(size)
        self.acquire_timeout = acquire_timeout
        self._url = url
        self._options = options
        Client(url, **options)  # validate the settings now, not on first use
        # LIFO: the most recently used (still connected) client is reused first.
        self._idle: queue.LifoQueue[Client | None] = queue.LifoQueue()
        for _ in range(self.size):
            self._idle.put(None)
        self._all: list[Client] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def acquire(self) -> Iterator[Client]:
        """Borrow a client for the duration of a ``with`` block."""
        if self._closed:
            raise ConfigurationError("the pool is closed")
        try:
            client = self._idle.get(timeout=self.acquire_timeout)
        except queue.Empty:
            raise NetworkTimeout(
                f"no pooled client became free within {self.acquire_timeout:g} s"
            ) from None
        try:
            if client is None:
                client = Client(self._url, **self._options)
                with self._lock:
                    self._all.append(client)
            yield client
        finally:
            if self._closed and client is not None:
                client.close()
            self._idle.put(client)

    def push(self, job_or_jobtype: Job | str, /, *args: Any, **options: Any) -> str:
        """``push`` on a pooled client (see :meth:`werk.Client.push`)."""
        with self.acquire() as client:
            return client.push(job_or_jobtype, *args, **options)

    def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """``push_bulk`` on a pooled client (see :meth:`werk.Client.push_bulk`)."""
        with self.acquire() as client:
            return client.push_bulk(jobs)

    def close(self) -> None:
        """Close every idle client (busy ones close when returned); no new borrowing."""
        self._closed = True
        with self._lock:
            clients = list(self._all)
        for client in clients:
            client.close()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClientPool:
    """The asyncio twin of :class:`ClientPool`, handing out :class:`werk.AsyncClient`.

    An AsyncClient already pipelines concurrent calls; a pool is for keeping blocking
    FETCHes from delaying other commands, or for spreading load over connections.

    Example::

        pool = werk.AsyncClientPool(size=4)
        async with pool.acquire() as client:
            await client.push("Resize", 42)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        size: int = 10,
        acquire_timeout: float | None = None,
        **options: Any,
    ) -> None:
        self.size = _check_size(size)
        self.acquire_timeout = acquire_timeout
        self._url = url
        self._options = options
        AsyncClient(url, **options)  # validate the settings now
        self._idle: asyncio.LifoQueue[AsyncClient | None] | None = None
        self._all: list[AsyncClient] = []
        self._closed = False

    def _queue(self) -> asyncio.LifoQueue[AsyncClient | None]:
        # Created on first use, inside the running loop (Python 3.10 binds queues to loops).
        if self._idle is None:
            self._idle = asyncio.LifoQueue()
            for _ in range(self.size):
                self._idle.put_nowait(None)
        return self._idle

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[AsyncClient]:
        """Borrow a client for the duration of an ``async with`` block."""
        if self._closed:
            raise ConfigurationError("the pool is closed")
        idle = self._queue()
        try:
            client = await asyncio.wait_for(idle.get(), self.acquire_timeout)
        except asyncio.TimeoutError:
            raise NetworkTimeout(
                f"no pooled client became free within {self.acquire_timeout:g} s"
            ) from None
        try:
            if client is None:
                client = AsyncClient(self._url, **self._options)
                self._all.append(client)
            yield client
        finally:
            if self._closed and client is not None:
                await client.close()
            idle.put_nowait(client)

    async def push(self, job_or_jobtype: Job | str, /, *args: Any, **options: Any) -> str:
        """``push`` on a pooled client (see :meth:`werk.AsyncClient.push`)."""
        async with self.acquire() as client:
            return await client.push(job_or_jobtype, *args, **options)

    async def push_bulk(self, jobs: Iterable[Job | Mapping[str, Any]]) -> dict[str, str]:
        """``push_bulk`` on a pooled client (see :meth:`werk.AsyncClient.push_bulk`)."""
        async with self.acquire() as client:
            return await client.push_bulk(jobs)

    async def close(self) -> None:
        """Close every client; no new borrowing."""
        self._closed = True
        for client in list(self._all):
            await client.close()

    async def __aenter__(self) -> AsyncClientPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

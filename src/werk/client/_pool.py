"""Pools of clients for many producers: one connection per concurrent user.

Clients are created lazily. A client whose connection broke is still handed out: it
reconnects on its next call. ``acquire`` waits at most ``acquire_timeout`` seconds
(``None``: forever), then raises :class:`werk.NetworkTimeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from werk._errors import ConfigurationError, NetworkTimeout
from werk.client._aio import AsyncClient
from werk.client._batch import AsyncBatch, Batch
from werk.client._methods import pooled, pooled_twin
from werk.client._sync import Client

__all__ = ["AsyncClientPool", "ClientPool"]

C = TypeVar("C", Client, AsyncClient)


class _Pool(Generic[C]):
    """What both pools share: their arguments, and the clients made so far."""

    _flavour: ClassVar[type[Any]]

    def __init__(
        self,
        url: str | None = None,
        *,
        size: int = 10,
        acquire_timeout: float | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"pool size must be a positive int, got {size!r}")
        if acquire_timeout is not None and not (
            isinstance(acquire_timeout, (int, float)) and acquire_timeout >= 0
        ):
            raise ConfigurationError(
                f"acquire_timeout must be seconds >= 0, got {acquire_timeout!r}"
            )
        self.size = size
        self.acquire_timeout = acquire_timeout
        self._url = url
        self._options = options
        self._flavour(url, **options)  # check the settings now, not on first use
        self._all: list[C] = []
        self._closed = False
        self._prepare()

    def _prepare(self) -> None:
        """Set up the idle queue (where the _flavour allows it)."""

    def _new_client(self) -> C:
        client: C = self._flavour(self._url, **self._options)
        self._all.append(client)
        return client

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("the pool is closed")

    def _exhausted(self) -> NetworkTimeout:
        return NetworkTimeout(f"no pooled client became free within {self.acquire_timeout:g} s")


class ClientPool(_Pool[Client]):
    """A thread-safe pool of :class:`werk.Client`; ``options`` are passed to each client.

    Example::

        pool = werk.ClientPool("tcp://faktory:7419", size=16, timeout=3)
        with pool.acquire() as client:          # blocks while all 16 are in use
            client.push("Resize", 42)
        pool.push("Resize", 43)                 # the same, in one call
        pool.close()
    """

    _flavour = Client

    def _prepare(self) -> None:
        # LIFO: the most recently used (still connected) client is reused first.
        self._idle: queue.LifoQueue[Client | None] = queue.LifoQueue()
        for _ in range(self.size):
            self._idle.put(None)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def acquire(self) -> Iterator[Client]:
        """Borrow a client for the duration of a ``with`` block."""
        self._check_open()
        try:
            client = self._idle.get(timeout=self.acquire_timeout)
        except queue.Empty:
            raise self._exhausted() from None
        try:
            if client is None:
                with self._lock:
                    client = self._new_client()
            yield client
        finally:
            if self._closed and client is not None:
                client.close()
            self._idle.put(client)

    push = pooled(Client.push)
    push_bulk = pooled(Client.push_bulk)

    @contextlib.contextmanager
    def batch(
        self,
        *,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
        parent_bid: str | None = None,
    ) -> Iterator[Batch]:
        """Enterprise only: a new batch on a client borrowed for the ``with`` block (see
        :meth:`werk.Client.batch`): BATCH NEW on entry, its pushes on that client, BATCH
        COMMIT on a clean exit.

        Example::

            with pool.batch(success=werk.Job("Imported")) as batch:
                batch.push("ImportRow", 1)
        """
        with (
            self.acquire() as client,
            client.batch(
                description=description, success=success, complete=complete, parent_bid=parent_bid
            ) as batch,
        ):
            yield batch

    @contextlib.contextmanager
    def reopen_batch(self, bid: str) -> Iterator[Batch]:
        """Enterprise only: an existing batch on a borrowed client (see
        :meth:`werk.Client.reopen_batch`).

        Example::

            with pool.reopen_batch(bid) as batch:
                batch.push("ImportRow", 3)
        """
        with self.acquire() as client, client.reopen_batch(bid) as batch:
            yield batch

    def close(self) -> None:
        """Close every idle client (busy ones close when returned); no new borrowing."""
        self._closed = True
        with self._lock:
            clients = list(self._all)
        for client in clients:
            client.close()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClientPool(_Pool[AsyncClient]):
    """The asyncio twin of :class:`ClientPool`, handing out :class:`werk.AsyncClient`.

    An AsyncClient already pipelines concurrent calls; a pool is for keeping blocking
    FETCHes from delaying other commands, or for spreading load over connections.

    Example::

        async with werk.AsyncClientPool(size=4) as pool:
            async with pool.acquire() as client:
                await client.fetch("default")
            await pool.push("Resize", 42)
    """

    _flavour = AsyncClient
    _idle: asyncio.LifoQueue[AsyncClient | None] | None = None

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
        self._check_open()
        idle = self._queue()
        try:
            client = await asyncio.wait_for(idle.get(), self.acquire_timeout)
        except asyncio.TimeoutError:
            raise self._exhausted() from None
        try:
            if client is None:
                client = self._new_client()
            yield client
        finally:
            if self._closed and client is not None:
                await client.close()
            idle.put_nowait(client)

    push = pooled_twin(Client.push)
    push_bulk = pooled_twin(Client.push_bulk)

    @contextlib.asynccontextmanager
    async def batch(
        self,
        *,
        description: str | None = None,
        success: Any = None,
        complete: Any = None,
        parent_bid: str | None = None,
    ) -> AsyncIterator[AsyncBatch]:
        """Enterprise only: a new batch on a client borrowed for the ``async with`` block
        (see :meth:`ClientPool.batch`).

        Example::

            async with pool.batch(success=werk.Job("Imported")) as batch:
                await batch.push("ImportRow", 1)
        """
        async with (
            self.acquire() as client,
            client.batch(
                description=description, success=success, complete=complete, parent_bid=parent_bid
            ) as batch,
        ):
            yield batch

    @contextlib.asynccontextmanager
    async def reopen_batch(self, bid: str) -> AsyncIterator[AsyncBatch]:
        """Enterprise only: an existing batch on a borrowed client (see
        :meth:`ClientPool.reopen_batch`).

        Example::

            async with pool.reopen_batch(bid) as batch:
                await batch.push("ImportRow", 3)
        """
        async with self.acquire() as client, client.reopen_batch(bid) as batch:
            yield batch

    async def close(self) -> None:
        """Close every client; no new borrowing."""
        self._closed = True
        for client in list(self._all):
            await client.close()

    async def __aenter__(self) -> AsyncClientPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

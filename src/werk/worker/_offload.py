"""The asyncio face of a job's connection: what :meth:`werk.JobContext.areopen_batch`,
``achild_batch`` and ``atrack`` use in ``async def`` jobs.

A job reaches the server through the worker's blocking connection of its thread
(:class:`~werk.worker._clients.ThreadClients`). An ``async def`` job must not block its
event loop on a round trip, so each call runs on a thread of the loop's default executor,
which has a connection of its own (the worker closes them all when it stops). This works
the same in every executor, child processes included, without a second kind of connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from werk.client import Client

__all__ = ["OffloadedClient"]


class OffloadedClient:
    """The commands an :class:`~werk.AsyncBatch` sends, awaited, each run by a thread on
    that thread's client from ``connect()``.

    Example::

        client = OffloadedClient(worker_clients.get)
        bid = await client.batch_open("b-W5uwOl0DNxfZyg")
    """

    def __init__(self, connect: Callable[[], Client]) -> None:
        self._connect = connect

    async def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        connect = self._connect

        def call() -> Any:
            return getattr(connect(), name)(*args, **kwargs)

        return await asyncio.to_thread(call)

    async def batch_new(self, **definition: Any) -> str:
        """BATCH NEW (see :meth:`werk.Client.batch_new`)."""
        bid: str = await self._run("batch_new", **definition)
        return bid

    async def batch_open(self, bid: str) -> str:
        """BATCH OPEN (see :meth:`werk.Client.batch_open`)."""
        opened: str = await self._run("batch_open", bid)
        return opened

    async def batch_commit(self, bid: str) -> None:
        """BATCH COMMIT (see :meth:`werk.Client.batch_commit`)."""
        await self._run("batch_commit", bid)

    async def batch_status(self, bid: str) -> Any:
        """BATCH STATUS (see :meth:`werk.Client.batch_status`)."""
        return await self._run("batch_status", bid)

    async def push(self, *args: Any, **kwargs: Any) -> str:
        """PUSH (see :meth:`werk.Client.push`)."""
        jid: str = await self._run("push", *args, **kwargs)
        return jid

    async def push_bulk(self, jobs: Any) -> dict[str, str]:
        """PUSHB (see :meth:`werk.Client.push_bulk`); the jobs are listed here, not on the
        thread, so that a generator runs in the job's own context."""
        errors: dict[str, str] = await self._run("push_bulk", list(jobs))
        return errors

"""Fixtures for the client tests: run one test body against both client flavours."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import werk


class Blocking:
    """Drive an AsyncClient from plain test code, on an event loop of its own.

    Each coroutine method runs to completion; between calls the loop is idle, as a
    blocking caller would leave it.
    """

    def __init__(self, client: werk.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if inspect.iscoroutinefunction(attr):

            def run(*args: Any, **kwargs: Any) -> Any:
                return self._loop.run_until_complete(attr(*args, **kwargs))

            return run
        return attr


MakeClient = Callable[..., Any]


@pytest.fixture(params=["sync", "async", "async-uvloop"])
def make_client(request: pytest.FixtureRequest) -> Iterator[MakeClient]:
    """``make_client(url, **options)``: a werk.Client, or an AsyncClient driven blockingly."""
    if request.param == "sync":
        made: list[werk.Client] = []

        def make_sync(*args: Any, **kwargs: Any) -> werk.Client:
            made.append(werk.Client(*args, **kwargs))
            return made[-1]

        yield make_sync
        for client in made:
            client.abort()
        return
    if request.param == "async-uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    clients: list[werk.AsyncClient] = []

    def make_async(*args: Any, **kwargs: Any) -> Blocking:
        clients.append(werk.AsyncClient(*args, **kwargs))
        return Blocking(clients[-1], loop)

    yield make_async
    for c in clients:
        loop.run_until_complete(c.abort())
    loop.close()

"""How AsyncClient and the pools get :class:`~werk.Client`'s command methods.

Each command is written once, as a method of :class:`~werk.Client` that builds what it
sends (a :class:`~werk._protocol.replies.Request`: one line and the reader of its reply; or
:class:`Requests`: several, each sent after the previous one's reply) and hands it to
``self._send``, which sends it and returns what the reply means. On an
:class:`~werk.AsyncClient` ``_send`` hands the request back unsent, so :func:`twin` runs
the very same method on an AsyncClient and sends what it gets through the AsyncClient's
awaitable ``_call``; the pools' methods borrow a client and call it (:func:`pooled`,
:func:`pooled_twin`). One signature, one docstring and one request/reply pair per command:
the four classes cannot drift apart, and type checkers see every argument.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, Union

from werk._protocol.replies import Request
from werk._protocol.resp import Reply

__all__ = ["Requests", "Sendable", "pooled", "pooled_twin", "twin"]

P = ParamSpec("P")
T = TypeVar("T")


class Requests(Generic[T]):
    """Requests sent one after another, each once the previous one is answered; ``result``
    is what the method returns once all are (see :class:`~werk.client._requests.BulkPush`)."""

    result: T

    def __iter__(self) -> Iterator[Request[Any]]:
        raise NotImplementedError


Sendable = Union[Request[T], Requests[T]]  # noqa: UP007 - a runtime alias on 3.10


class _SendsAsync(Protocol):
    def _call(self, request: Request[Any]) -> Awaitable[Reply]: ...


class _Lends(Protocol):
    def acquire(self) -> AbstractContextManager[Any]: ...


class _LendsAsync(Protocol):
    def acquire(self) -> AbstractAsyncContextManager[Any]: ...


A = TypeVar("A", bound=_SendsAsync)
L = TypeVar("L", bound=_Lends)
LA = TypeVar("LA", bound=_LendsAsync)


def _like(method: Callable[..., Any], owner: str) -> Callable[[Callable[..., Any]], Any]:
    # The new method shows the command's name, documentation and arguments.
    def name(new: Callable[..., Any]) -> Callable[..., Any]:
        functools.update_wrapper(new, method)
        new.__qualname__ = f"{owner}.{method.__name__}"
        new.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
        return new

    return name


def twin(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[A, P], Coroutine[Any, Any, T]]:
    """AsyncClient's ``method``: Client's, run on the AsyncClient (whose ``_send`` returns
    the request), then sent and awaited."""

    @_like(method, "AsyncClient")
    async def awaited(self: A, /, *args: P.args, **kwargs: P.kwargs) -> T:
        request: Sendable[T] = method(self, *args, **kwargs)  # type: ignore[assignment]
        if type(request) is Request:  # the per-call path: one line, one reply
            return request.read(await self._call(request), request)
        for each in request:  # type: ignore[union-attr] # several requests, one after another
            each.read(await self._call(each), each)
        return request.result  # type: ignore[union-attr]

    return awaited  # type: ignore[no-any-return]


def pooled(method: Callable[Concatenate[Any, P], T]) -> Callable[Concatenate[L, P], T]:
    """A pool's ``method``: Client's, on a borrowed client."""

    @_like(method, "ClientPool")
    def borrowing(self: L, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self.acquire() as client:
            return method(client, *args, **kwargs)

    return borrowing  # type: ignore[no-any-return]


def pooled_twin(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[LA, P], Coroutine[Any, Any, T]]:
    """An asyncio pool's ``method``: Client's, on a borrowed AsyncClient, awaited."""

    @_like(method, "AsyncClientPool")
    async def borrowing(self: LA, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with self.acquire() as client:
            return await getattr(client, method.__name__)(*args, **kwargs)  # type: ignore[no-any-return]

    return borrowing  # type: ignore[no-any-return]

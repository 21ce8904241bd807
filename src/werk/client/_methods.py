"""How the clients' command methods are made from the requests they send.

Each command is written once, on :class:`~werk.Client`, as a method that *builds* what it
sends: a :class:`~werk._protocol.replies.Request` (one line and the reader of its reply) or a
:class:`Requests` (several, each sent after the previous one's reply). :func:`command` makes
that method send it through the client and return what the reply means. The
:class:`~werk.AsyncClient` method is the same builder, awaited (:func:`twin`), and the
pools' methods borrow a client and call it (:func:`pooled`, :func:`pooled_twin`). One
signature, one docstring and one request/reply pair per command: the four classes cannot
drift apart, and type checkers see every argument.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, Union

from werk._protocol.replies import Request
from werk._protocol.resp import Reply

__all__ = ["Requests", "builder", "command", "pooled", "pooled_twin", "twin"]

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Requests(Generic[T]):
    """Requests sent one after another, each once the previous one is answered; ``result``
    is what the method returns once all are (see :class:`~werk.client._requests.BulkPush`)."""

    result: T

    def __iter__(self) -> Iterator[Request[Any]]:
        raise NotImplementedError


Sendable = Union[Request[T], Requests[T]]  # noqa: UP007 - a runtime alias on 3.10


class _Sends(Protocol):
    def _call(self, request: Request[Any]) -> Reply: ...


class _SendsAsync(Protocol):
    async def _call(self, request: Request[Any]) -> Reply: ...


class _Lends(Protocol):
    def acquire(self) -> AbstractContextManager[Any]: ...


class _LendsAsync(Protocol):
    def acquire(self) -> AbstractAsyncContextManager[Any]: ...


S = TypeVar("S", bound=_Sends)
A = TypeVar("A", bound=_SendsAsync)
L = TypeVar("L", bound=_Lends)
LA = TypeVar("LA", bound=_LendsAsync)


def builder(method: Callable[..., Any]) -> Callable[..., Sendable[Any]]:
    """The request builder behind a method made by :func:`command` (or one of its twins)."""
    build: Callable[..., Sendable[Any]] = method.__builder__  # type: ignore[attr-defined]
    return build


def _named(method: Callable[..., Any], build: Callable[..., Any], owner: str = "Client") -> None:
    # The method shows the builder's name, documentation and arguments; it returns what the
    # reply means, not the request ("Request[str]" -> "str"). Builders are Client methods.
    signature = inspect.signature(build)
    returns = signature.return_annotation
    if isinstance(returns, str) and returns.endswith("]"):
        returns = returns[returns.index("[") + 1 : -1]
    method.__name__ = build.__name__
    method.__qualname__ = f"{owner}.{build.__name__}"
    method.__doc__ = build.__doc__
    method.__module__ = build.__module__
    method.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[attr-defined]
    method.__builder__ = build  # type: ignore[attr-defined]


def command(build: Callable[Concatenate[S, P], Sendable[T]]) -> Callable[Concatenate[S, P], T]:
    """Make a client method that sends what ``build`` returns and returns what it means."""

    def method(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        request = build(self, *args, **kwargs)
        if type(request) is Request:  # the per-call path: one line, one reply
            return request.read(self._call(request), request)
        for each in request:  # type: ignore[union-attr]
            each.read(self._call(each), each)
        return request.result  # type: ignore[union-attr]

    _named(method, build)
    return method


def twin(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[A, P], Coroutine[Any, Any, T]]:
    """The asyncio client's method for a :func:`command` method: the same request, awaited."""
    build = builder(method)

    async def awaited(self: A, /, *args: P.args, **kwargs: P.kwargs) -> T:
        request = build(self, *args, **kwargs)
        if type(request) is Request:
            return request.read(await self._call(request), request)  # type: ignore[no-any-return]
        for each in request:  # type: ignore[union-attr]
            each.read(await self._call(each), each)
        return request.result  # type: ignore[union-attr,no-any-return]

    _named(awaited, build, "AsyncClient")
    return awaited


def pooled(method: Callable[Concatenate[Any, P], T]) -> Callable[Concatenate[L, P], T]:
    """A pool's method: ``method`` on a borrowed client."""
    name = builder(method).__name__

    def borrowing(self: L, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self.acquire() as client:
            return getattr(client, name)(*args, **kwargs)  # type: ignore[no-any-return]

    _named(borrowing, builder(method), "ClientPool")
    return borrowing


def pooled_twin(
    method: Callable[Concatenate[Any, P], T],
) -> Callable[Concatenate[LA, P], Coroutine[Any, Any, T]]:
    """An asyncio pool's method: ``method`` on a borrowed asyncio client, awaited."""
    name = builder(method).__name__

    async def borrowing(self: LA, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with self.acquire() as client:
            return await getattr(client, name)(*args, **kwargs)  # type: ignore[no-any-return]

    _named(borrowing, builder(method), "AsyncClientPool")
    return borrowing

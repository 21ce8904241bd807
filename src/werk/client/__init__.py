"""Faktory clients: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both have the same methods with the same arguments; both sit on :mod:`werk.protocol`
and share :mod:`werk.client.base`, so they cannot drift apart.

Example::

    from werk.client import Client, Mutation, Target

    with Client() as client:
        client.push("Resize", 42)
        client.mutate(Mutation.clear(Target.DEAD))
"""

from werk.client.aio import AsyncClient
from werk.client.config import Endpoint, parse_url, resolve_url
from werk.client.mutate import Mutation, Operation, Target
from werk.client.pool import AsyncClientPool, ClientPool
from werk.client.sync import Client

__all__ = [
    "AsyncClient",
    "AsyncClientPool",
    "Client",
    "ClientPool",
    "Endpoint",
    "Mutation",
    "Operation",
    "Target",
    "parse_url",
    "resolve_url",
]

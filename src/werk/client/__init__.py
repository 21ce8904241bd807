"""Faktory clients: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both have the same methods with the same arguments: each command is written once and
sent by either (see ``werk.client._methods``). Also here: the pools, :class:`Mutation`
for MUTATE, the settings every client resolves (:class:`ClientSettings`,
:data:`DEFAULT_TIMEOUT`), URL helpers, and the raw reply types of ``execute()``.

Example::

    from werk.client import Client, Mutation, Target

    with Client() as client:
        client.push("Resize", 42)
        client.mutate(Mutation.clear(Target.DEAD))
"""

from werk._protocol.replies import BeatState
from werk._protocol.resp import ErrorReply, Reply
from werk.client._aio import AsyncClient
from werk.client._batch import AsyncBatch, Batch, current_bid
from werk.client._mutation import Mutation, MutationAction, Target
from werk.client._pool import AsyncClientPool, ClientPool
from werk.client._settings import (
    DEFAULT_TIMEOUT,
    ClientSettings,
    Endpoint,
    parse_url,
    resolve_url,
)
from werk.client._status import BatchStatus, CallbackState, JobTrack, TrackState
from werk.client._sync import Client

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncBatch",
    "AsyncClient",
    "AsyncClientPool",
    "Batch",
    "BatchStatus",
    "BeatState",
    "CallbackState",
    "Client",
    "ClientPool",
    "ClientSettings",
    "Endpoint",
    "ErrorReply",
    "JobTrack",
    "Mutation",
    "MutationAction",
    "Reply",
    "Target",
    "TrackState",
    "current_bid",
    "parse_url",
    "resolve_url",
]

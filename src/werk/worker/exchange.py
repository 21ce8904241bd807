"""A fetch slot's round trip: the last job's ACK (or FAIL) and the next FETCH in one write.

One write and one wait per job instead of two, and an ACK never queues behind another
slot's blocking FETCH (each slot has its own client). The I/O is the clients'
``execute_many``; this module only says which lines go out and what the replies mean.

Example::

    with worker.client() as client:
        error, payload = report_and_fetch(client, commands.ack(jid), fetch_line)
"""

from __future__ import annotations

from typing import Any

from werk.client import AsyncClient, Client
from werk.client.base import closes_connection, fetched_payload
from werk.errors import (
    ConnectionClosedError,
    JobNotFoundError,
    NetworkError,
    ProtocolError,
    ServerError,
)
from werk.protocol.resp import ErrorReply, Reply

__all__ = [
    "Outcome",
    "reconnectable",
    "report_and_fetch",
    "report_and_fetch_async",
    "report_owed",
]

Outcome = tuple[ServerError | None, dict[str, Any] | None]
"""The server's refusal of the report (or None), and the fetched job's payload (or None)."""


def _lines(report: bytes | None, fetch: bytes | None) -> list[bytes]:
    if report is None:
        return [] if fetch is None else [fetch]
    return [report] if fetch is None else [report, fetch]


def _settle(report: bytes | None, fetch: bytes | None, replies: list[Reply]) -> Outcome:
    # The report's error reply (e.g. "Job not found") is returned, not raised, so that the
    # FETCH reply is still read. An error after which the server hangs up (it is shutting
    # down) counts as a lost connection: the report is sent again once reconnected.
    error: ServerError | None = None
    if report is not None:
        reply = replies[0]
        if type(reply) is ErrorReply:
            error = reply.to_exception()
            if closes_connection(error):
                raise ConnectionClosedError(f"the server closed the connection: {error}")
    if fetch is None:
        return error, None
    reply = replies[-1]
    if type(reply) is ErrorReply and closes_connection(reply.to_exception()):
        raise ConnectionClosedError(f"the server closed the connection: {reply}")
    return error, fetched_payload(reply)


def report_and_fetch(client: Client, report: bytes | None, fetch: bytes | None) -> Outcome:
    """Send the report and/or the FETCH in one write; either may be None.

    Network and protocol errors raise (then the report's fate is unknown: sending it again
    is safe); a FETCH refused by the server raises its ServerError.
    """
    lines = _lines(report, fetch)
    if not lines:
        return None, None
    return _settle(report, fetch, client.execute_many(lines, blocking=fetch is not None))


async def report_and_fetch_async(
    client: AsyncClient, report: bytes | None, fetch: bytes | None
) -> Outcome:
    """The asyncio twin of :func:`report_and_fetch`."""
    lines = _lines(report, fetch)
    if not lines:
        return None, None
    replies = await client.execute_many(lines, blocking=fetch is not None)
    return _settle(report, fetch, replies)


def report_owed(error: ServerError) -> bool:
    """True when the server refused an ACK/FAIL because it could not store it (its disk is
    full, its database failing): the report is still owed and must be sent again later.

    False when the server does not hold the job (``Job not found``: already reported, or its
    reservation expired) or found the report malformed: sending it again cannot help.

    Example::

        >>> report_owed(ServerError("ERR", "[Errno 28] No space left on device"))
        True
        >>> report_owed(JobNotFoundError("ERR", "Job not found 0123456789abcdef"))
        False
    """
    if isinstance(error, JobNotFoundError):
        return False
    message = error.message.lower()
    return not message.startswith("invalid") and not message.startswith("missing")


def reconnectable(exc: BaseException) -> bool:
    """True for errors after which reconnecting (with back-off) is the answer."""
    return isinstance(exc, (NetworkError, ProtocolError))

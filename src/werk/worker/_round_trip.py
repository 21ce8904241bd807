"""A fetch slot's round trip: the last job's ACK (or FAIL) and the next FETCH in one write.

One write and one wait per job instead of two, and an ACK never queues behind another
slot's blocking FETCH (each slot has its own client). The bytes move through the clients'
``execute_many``; the connection's session pairs the replies; this module says which lines
go out and what their replies mean to a slot.
"""

from __future__ import annotations

from typing import Any

from werk._errors import JobNotFoundError, NetworkError, ProtocolError, ServerError
from werk._protocol.replies import fetched_payload
from werk._protocol.resp import ErrorReply, Reply
from werk._protocol.session import closed_after, closes_connection
from werk.client import AsyncClient, Client

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


def _settle(
    client: Client | AsyncClient, report: bytes | None, fetch: bytes | None, replies: list[Reply]
) -> Outcome:
    # The report's error reply (e.g. "Job not found") is returned, not raised, so that the
    # FETCH reply is still read. An error after which the server hangs up (it is shutting
    # down) counts as a lost connection: the report is sent again once reconnected.
    error: ServerError | None = None
    for reply in replies:
        if type(reply) is ErrorReply and closes_connection(reply):
            raise closed_after(str(client.settings.endpoint), reply)
    if report is not None and type(replies[0]) is ErrorReply:
        error = replies[0].to_exception()
    if fetch is None:
        return error, None
    return error, fetched_payload(replies[-1])


def report_and_fetch(client: Client, report: bytes | None, fetch: bytes | None) -> Outcome:
    """Send the report and/or the FETCH in one write; either may be None.

    Network and protocol errors raise (then the report's fate is unknown: sending it again
    is safe); a FETCH refused by the server raises its ServerError.
    """
    lines = _lines(report, fetch)
    if not lines:
        return None, None
    replies = client.execute_many(lines, blocking=fetch is not None)
    return _settle(client, report, fetch, replies)


async def report_and_fetch_async(
    client: AsyncClient, report: bytes | None, fetch: bytes | None
) -> Outcome:
    """The asyncio twin of :func:`report_and_fetch`."""
    lines = _lines(report, fetch)
    if not lines:
        return None, None
    replies = await client.execute_many(lines, blocking=fetch is not None)
    return _settle(client, report, fetch, replies)


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

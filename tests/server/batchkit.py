"""Helpers of the batch and tracking tests: BATCH and TRACK on the raw protocol, and
working jobs off a queue by hand (FETCH then ACK or FAIL), and taking jobs off the server
the other ways (MUTATE, the web UI's actions)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

from tests.server.rawclient import Raw

from werk.server import EmbeddedServer

T = TypeVar("T")


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def new_batch(c: Raw, **body: Any) -> str:
    """BATCH NEW; the bid (a bulk string)."""
    reply = c.cmd("BATCH NEW " + dumps(body))
    assert isinstance(reply, bytes), reply
    return reply.decode()


def callback(jobtype: str, queue: str = "callbacks", **fields: Any) -> dict[str, Any]:
    return {"jobtype": jobtype, "args": [], "queue": queue, **fields}


def status(c: Raw, bid: str) -> dict[str, Any]:
    reply = c.cmd(f"BATCH STATUS {bid}")
    assert isinstance(reply, bytes), reply
    data: dict[str, Any] = json.loads(reply)
    return data


def progress(c: Raw, bid: str) -> tuple[int, int, int, str, str]:
    """(total, pending, failed, complete_st, success_st)."""
    s = status(c, bid)
    return s["total"], s["pending"], s["failed"], s["complete_st"], s["success_st"]


def push_members(c: Raw, bid: str, jids: list[str], queue: str = "default") -> None:
    jobs = [
        {"jid": jid, "jobtype": "Member", "args": [], "queue": queue, "custom": {"bid": bid}}
        for jid in jids
    ]
    for start in range(0, len(jobs), 500):
        assert c.cmd("PUSHB " + dumps(jobs[start : start + 500])) == b"{}"


def ack(c: Raw, jid: str) -> None:
    assert c.cmd("ACK " + dumps({"jid": jid})) == "OK"


def fail(c: Raw, jid: str) -> None:
    reply = c.cmd("FAIL " + dumps({"jid": jid, "errtype": "Boom", "message": "boom"}))
    assert reply == "OK", reply


def take(c: Raw, queue: str = "default") -> dict[str, Any]:
    """FETCH one job that must be there."""
    job = c.fetch(queue)
    assert job is not None, f"nothing in {queue}"
    return job


def drain(c: Raw, queue: str) -> list[dict[str, Any]]:
    """FETCH every job of ``queue`` (without ACK)."""
    jobs = []
    while (job := c.fetch(queue)) is not None:
        jobs.append(job)
    return jobs


def queue_jobs(srv: Any, queue: str) -> list[dict[str, Any]]:
    """The jobs waiting in ``queue``, decoded, without taking them."""

    def read() -> list[dict[str, Any]]:
        q = srv.manager.queues.get(queue) or []
        return [json.loads(item.payload) for item in q]

    result: list[dict[str, Any]] = srv.call(read)
    return result


def mutate(c: Raw, cmd: str, target: str, **flt: Any) -> None:
    """Send MUTATE ``cmd`` on ``target`` (with ``flt`` as its filter, if any)."""
    op: dict[str, Any] = {"cmd": cmd, "target": target}
    if flt:
        op["filter"] = flt
    assert c.cmd("MUTATE " + dumps(op)) == "OK"


def web(srv: EmbeddedServer, action: Coroutine[Any, Any, T]) -> T:
    """Run a web UI action on the server's loop, as the browser's request would."""
    loop = srv.call(asyncio.get_running_loop)
    return asyncio.run_coroutine_threadsafe(action, loop).result(30)

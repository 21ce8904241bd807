"""One design, two I/O flavours: the sync and asyncio APIs match name for name, and every
command of AsyncClient and of the pools is Client's own method, so it sends the same
request and reads its reply the same way."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

import werk
from werk import Mutation, Target
from werk._protocol.replies import Request
from werk.client import AsyncClient, Client

# Written once per flavour: how bytes move, not what they say.
IO_METHODS = {"abort", "close", "connect", "connected", "execute", "execute_many"}
# Context managers, not commands: each flavour returns its own (Batch, AsyncBatch).
CONTEXT_MANAGERS = {"batch", "reopen_batch"}


def public(cls: type) -> dict[str, str]:
    """Public names -> signature text, with the async twins' type names made sync."""
    out: dict[str, str] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        if isinstance(inspect.getattr_static(cls, name), property):
            out[name] = "property"
        elif callable(member):
            sig = str(inspect.signature(member))
            out[name] = (
                sig.replace("AsyncIterator[", "Iterator[")
                .replace("AsyncClient", "Client")
                .replace("AsyncBatch", "Batch")
            )
    return out


COMMANDS = sorted(set(public(Client)) - IO_METHODS - CONTEXT_MANAGERS)


@pytest.mark.parametrize(
    ("sync", "aio"), [(werk.Client, werk.AsyncClient), (werk.ClientPool, werk.AsyncClientPool)]
)
def test_same_names_and_signatures(sync: type, aio: type) -> None:
    assert public(sync) == public(aio)
    assert inspect.signature(sync.__init__) == inspect.signature(aio.__init__)


@pytest.mark.parametrize("cls", [werk.AsyncClient, werk.AsyncClientPool])
def test_every_async_method_is_awaitable(cls: type) -> None:
    for name, kind in public(cls).items():
        if kind == "property":
            continue
        member = getattr(cls, name)
        if name == "acquire" or name in CONTEXT_MANAGERS:  # async context managers
            continue
        assert inspect.iscoroutinefunction(member), name


def test_batches_mirror_each_other() -> None:
    assert public(werk.Batch) == public(werk.AsyncBatch)
    for name, kind in public(werk.AsyncBatch).items():
        if kind != "property" and name != "child":
            assert inspect.iscoroutinefunction(getattr(werk.AsyncBatch, name)), name
    assert str(inspect.signature(werk.Batch.push)).replace("self, ", "") == str(
        inspect.signature(Client.push)
    ).replace("self, ", "")


def test_the_client_covers_every_command() -> None:
    assert set(COMMANDS) == {
        "push",
        "push_bulk",
        "fetch",
        "ack",
        "fail",
        "beat",
        "info",
        "flush",
        "queue_pause",
        "queue_resume",
        "queue_remove",
        "queue_latency",
        "mutate",
        "batch_new",
        "batch_open",
        "batch_commit",
        "batch_status",
        "track_get",
        "track_set",
    }


@pytest.mark.parametrize("name", COMMANDS)
def test_every_async_command_is_the_clients_own(name: str) -> None:
    twin = getattr(AsyncClient, name)
    assert twin.__wrapped__ is getattr(Client, name)
    assert twin.__doc__ == getattr(Client, name).__doc__
    assert twin.__qualname__ == f"AsyncClient.{name}"


@pytest.mark.parametrize("name", ["push", "push_bulk"])
def test_pool_commands_are_the_clients_own(name: str) -> None:
    for pool in (werk.ClientPool, werk.AsyncClientPool):
        assert getattr(pool, name).__wrapped__ is getattr(Client, name)


# One call per command, and the reply a server would give to it.
CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any], Any]] = {
    "push": (("Resize", 1), {"jid": "0123456789abcdef", "queue": "q"}, "OK"),
    "push_bulk": (([{"jobtype": "A", "jid": "0123456789abcdef"}],), {}, b"{}"),
    "fetch": (("q", "r"), {}, b'{"jid":"0123456789abcdef","jobtype":"A","args":[]}'),
    "ack": ((werk.Job("A", jid="0123456789abcdef"),), {}, "OK"),
    "fail": (("0123456789abcdef", "boom"), {"errtype": "E"}, "OK"),
    "beat": (("quiet", 10), {}, b'{"state":"terminate"}'),
    "info": ((), {}, b'{"faktory":{}}'),
    "flush": ((), {}, "OK"),
    "queue_pause": (("q",), {}, "OK"),
    "queue_resume": (("q",), {}, "OK"),
    "queue_remove": (("q",), {}, "OK"),
    "queue_latency": (("q",), {}, b'{"q":1.5}'),
    "mutate": ((Mutation.clear(Target.DEAD),), {}, "OK"),
    "batch_new": ((), {"description": "d"}, "bid-1"),
    "batch_open": (("bid-1",), {}, "bid-1"),
    "batch_commit": (("bid-1",), {}, "OK"),
    "batch_status": (("bid-1",), {}, b'{"total":1}'),
    "track_get": (("0123456789abcdef",), {}, b'{"percent":5}'),
    "track_set": (("0123456789abcdef",), {"percent": 5}, "OK"),
}


def test_every_command_has_a_sample_call() -> None:
    assert sorted(CALLS) == COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_both_flavours_send_the_same_request_and_read_it_the_same_way(name: str) -> None:
    args, kwargs, reply = CALLS[name]
    sent: dict[str, list[Request[Any]]] = {"sync": [], "async": []}

    def call(flavour: str) -> Any:
        def record(request: Request[Any], lines: Any = ()) -> Any:
            sent[flavour].append(request)
            return reply

        async def record_async(request: Request[Any], lines: Any = ()) -> Any:
            return record(request, lines)

        if flavour == "sync":
            client: Any = Client("tcp://127.0.0.1:1", wid="w1")
            client._call = record
            return getattr(client, name)(*args, **kwargs)
        aclient: Any = AsyncClient("tcp://127.0.0.1:1", wid="w1")
        aclient._call = record_async
        return asyncio.run(getattr(aclient, name)(*args, **kwargs))

    value = call("sync")
    assert call("async") == value
    assert len(sent["sync"]) == len(sent["async"]) >= 1
    for ours, theirs in zip(sent["sync"], sent["async"], strict=True):
        assert (ours.line, ours.jids, ours.blocking) == (theirs.line, theirs.jids, theirs.blocking)
        assert (
            getattr(ours.read, "__func__", ours.read).__qualname__
            == getattr(theirs.read, "__func__", theirs.read).__qualname__
        )

"""One design, two I/O flavours: the sync and asyncio APIs match name for name."""

from __future__ import annotations

import inspect

import pytest

import werk


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
            out[name] = sig.replace("AsyncIterator[", "Iterator[").replace("AsyncClient", "Client")
    return out


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
        if name == "acquire":  # an async context manager
            continue
        assert inspect.iscoroutinefunction(member), name


def test_the_client_covers_every_command() -> None:
    names = set(public(werk.Client))
    assert names >= {
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
        "close",
        "connect",
        "batch_new",
        "batch_open",
        "batch_commit",
        "batch_status",
        "track_get",
        "track_set",
        "execute",
    }

"""The typed options of unique and expiring jobs on ``push``, ``Job`` and ``@app.job``:
validated before anything is sent, written into ``custom`` as Faktory Enterprise reads them,
and the duplicate's ``werk.NotUniqueError`` (sync and async) or ``push_bulk`` entry."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from tests.server.rawclient import Raw
from tests.servers import MANUAL_EPOCH, ServerFactory

import werk
from werk.server import EmbeddedServer, ManualClock


@pytest.fixture
def srv(make_server: ServerFactory) -> EmbeddedServer:
    return make_server(clock=ManualClock(MANUAL_EPOCH))


def stored_custom(srv: EmbeddedServer, queue: str = "default") -> list[dict[str, Any]]:
    """The ``custom`` of every job waiting in ``queue``, as the server stored it."""
    items = srv.call(lambda: list(srv.manager.queues.get(queue, ())))
    return [json.loads(item.payload).get("custom") for item in items]


def test_push_options_go_into_custom(srv: EmbeddedServer) -> None:
    deadline = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with werk.Client(srv.url) as client:
        client.push("A", 1, unique_for=60, unique_until="start")
        client.push("A", 2, unique_for=timedelta(minutes=1, milliseconds=500), custom={"k": 1})
        client.push("A", 3, expires_in=timedelta(hours=1))
        client.push("A", 4, expires_at=deadline)
        client.push("A", 5, expires_at="2030-01-01T00:00:00+02:00")
        client.push("A", 6, custom={"unique_for": 5})  # custom as it is: still unique
    assert stored_custom(srv) == [
        {"unique_for": 60, "unique_until": "start"},
        {"k": 1, "unique_for": 60.5},
        # The server turned expires_in into a deadline (push time + 3600 s).
        {"expires_in": 3600, "expires_at": "2027-01-15T09:00:00Z"},
        {"expires_at": "2030-01-02T01:04:05Z"},
        {"expires_at": "2030-01-01T00:00:00+02:00"},
        {"unique_for": 5},
    ]


def test_a_duplicate_raises_not_unique_error_with_its_jid(srv: EmbeddedServer) -> None:
    with werk.Client(srv.url) as client:
        client.push("Report", 7, unique_for=3600)
        with pytest.raises(werk.NotUniqueError) as info:
            client.push("Report", 7, jid="duplicate-jid-1", unique_for=3600)
        job = werk.Job("Report", [7], jid="duplicate-jid-2", unique_for=3600)
        with pytest.raises(werk.NotUniqueError) as info2:
            client.push(job)
        # push_bulk reports it per job, as the server words it.
        errors = client.push_bulk(
            [
                werk.Job("Report", [7], jid="duplicate-jid-3", unique_for=3600),
                werk.Job("Report", [8], jid="distinct-jid-04", unique_for=3600),
                {"jobtype": "Report", "args": [8], "jid": "duplicate-jid-5", "unique_for": 60},
            ]
        )
    error = info.value
    assert isinstance(error, werk.ServerError)
    assert (error.code, error.message, error.jid) == (
        "NOTUNIQUE",
        "Job not unique",
        "duplicate-jid-1",
    )
    assert info2.value.jid == "duplicate-jid-2"
    assert errors == {
        "duplicate-jid-3": "NOTUNIQUE Job not unique",
        "duplicate-jid-5": "NOTUNIQUE Job not unique",
    }
    assert srv.info()["queues"] == {"default": 2}


async def test_the_async_client_raises_the_same(srv: EmbeddedServer) -> None:
    async with werk.AsyncClient(srv.url) as client:
        await client.push("Report", 1, unique_for=60, expires_in=30)
        with pytest.raises(werk.NotUniqueError) as info:
            await client.push("Report", 1, jid="async-duplicate", unique_for=60)
        assert info.value.jid == "async-duplicate"
        assert await client.push_bulk(
            [werk.Job("Report", [1], jid="async-dup-bulk", unique_for=60)]
        ) == {"async-dup-bulk": "NOTUNIQUE Job not unique"}


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"unique_for": 0}, "unique_for", "must be more than 0 seconds, got 0"),
        ({"unique_for": timedelta(0)}, "unique_for", "must be more than 0 seconds, got 0.0"),
        ({"unique_for": "60"}, "unique_for", "must be a number of seconds or a timedelta, got str"),
        (
            {"unique_for": True},
            "unique_for",
            "must be a number of seconds or a timedelta, got bool",
        ),
        ({"unique_for": float("inf")}, "unique_for", "must be more than 0 seconds, got inf"),
        (
            {"unique_for": 60, "unique_until": "end"},
            "unique_until",
            'must be "success" or "start", got \'end\'',
        ),
        ({"unique_until": "start"}, "unique_until", "needs unique_for (the lock's time limit)"),
        ({"expires_in": -5}, "expires_in", "must be more than 0 seconds, got -5"),
        (
            {"expires_at": "tomorrow"},
            "expires_at",
            "must be an RFC3339 timestamp with a zone (Z or +HH:MM), got 'tomorrow'",
        ),
        ({"expires_at": 17}, "expires_at", "must be a datetime or str, got int"),
        (
            {"expires_at": "2030-01-01T00:00:00Z", "expires_in": 5},
            "expires_at",
            "give expires_at or expires_in, not both",
        ),
        (
            {"unique_for": 5, "custom": {"unique_for": 6}},
            "unique_for",
            "given both as an option and in custom (6)",
        ),
    ],
)
def test_bad_options_are_refused_before_sending(
    srv: EmbeddedServer, options: dict[str, Any], field: str, message: str
) -> None:
    app = werk.App(srv.url)
    with werk.Client(srv.url) as client:
        for attempt in (
            lambda: client.push("A", 1, **options),
            lambda: werk.Job("A", [1], **options),
            lambda: client.push_bulk([{"jobtype": "A", "args": [1], **options}]),
            lambda: app.job(**options)(lambda: None),
        ):
            with pytest.raises(werk.JobValidationError) as info:
                attempt()
            assert (info.value.field, info.value.message) == (field, message)
    assert srv.info()["queues"] == {}


def test_job_reads_its_options_back(srv: EmbeddedServer) -> None:
    job = werk.Job("A", unique_for=timedelta(seconds=90), expires_at="2030-01-01T00:00:00Z")
    assert (job.unique_for, job.unique_until, job.expires_at) == (
        90,
        "success",
        "2030-01-01T00:00:00Z",
    )
    assert job.to_dict()["custom"] == {"unique_for": 90, "expires_at": "2030-01-01T00:00:00Z"}
    plain = werk.Job("A")
    assert (plain.unique_for, plain.unique_until, plain.expires_at, plain.custom) == (
        None,
        None,
        None,
        None,
    )
    # push(job) takes no options besides the job.
    with werk.Client(srv.url) as client, pytest.raises(werk.JobValidationError):
        client.push(plain, unique_for=5)
    assert srv.info()["queues"] == {}


def test_app_job_options_and_with_options(srv: EmbeddedServer) -> None:
    app = werk.App(srv.url)

    @app.job(unique_for=600, unique_until="start", expires_in=timedelta(minutes=5), timeout=10)
    def refresh(account: int) -> None: ...

    assert refresh.to_job(1).custom == {
        "unique_for": 600,
        "unique_until": "start",
        "expires_in": 300,
        "werk_timeout": 10,
    }
    refresh.push(1)
    with pytest.raises(werk.NotUniqueError):
        refresh.push(1)
    refresh.with_options(queue="other", expires_in=30).push(1)
    assert refresh.with_options(unique_for=5).to_job(2).unique_for == 5
    assert stored_custom(srv, "other") == [
        {
            "unique_for": 600,
            "unique_until": "start",
            "expires_in": 30,
            "werk_timeout": 10,
            "expires_at": "2027-01-15T08:00:30Z",
        }
    ]
    app.close()


def test_a_raw_duplicate_on_the_wire(srv: EmbeddedServer) -> None:
    # What the typed options send is exactly what Enterprise's other clients send.
    with werk.Client(srv.url) as client:
        client.push("order", 100, jid="first-copy-01", queue="q", unique_for=60)
    with Raw(srv) as c:
        line = (
            '{"jid":"second-copy-01","jobtype":"order","args":[100],"queue":"q",'
            '"custom":{"unique_for":60}}'
        )
        assert str(c.cmd("PUSH " + line).to_exception()) == "NOTUNIQUE Job not unique"

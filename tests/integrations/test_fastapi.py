"""The FastAPI example, run end to end: lifespan opens the pool, an endpoint pushes a job."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

import werk
from werk.server import EmbeddedServer


def test_endpoint_pushes_a_job_through_the_lifespan_pool(
    faktory_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKTORY_URL", faktory_server.url)
    monkeypatch.delenv("FAKTORY_PROVIDER", raising=False)
    from examples.fastapi_app import app

    with TestClient(app) as http:  # entering runs the lifespan
        pool = app.state.faktory
        assert isinstance(pool, werk.AsyncClientPool)
        response = http.post("/signups", json={"email": "ann@example.com"})
        assert response.status_code == 202, response.text
        jid = response.json()["jid"]

        refused = http.post("/signups", json={})
        assert refused.status_code == 422  # validated by FastAPI; nothing is pushed

    with pytest.raises(werk.ConfigurationError, match="closed"):  # closed when the app stops
        asyncio.run(pool.push("SendWelcomeEmail", "late@example.com", queue="mail"))

    with werk.Client(faktory_server.url) as client:
        assert client.info()["faktory"]["queues"] == {"mail": 1}
        job = client.fetch("mail")
        assert job is not None
        assert (job.jid, job.jobtype, job.args) == (jid, "SendWelcomeEmail", ["ann@example.com"])

"""A FastAPI app that pushes Faktory jobs through one shared ``werk.AsyncClientPool``.

The pool is opened in the application's lifespan, so every request borrows an already
connected client instead of dialling the server, and it is closed when the app stops.

Run it (``pip install 'werk[fastapi]' uvicorn``), with a server running (``werk server``)::

    FAKTORY_URL=tcp://localhost:7419 uvicorn examples.fastapi_app:app

    curl -X POST localhost:8000/signups -H 'content-type: application/json' \\
         -d '{"email": "ann@example.com"}'
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from pydantic import BaseModel

import werk


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # FAKTORY_URL (or FAKTORY_PROVIDER) is read here, at startup, not at import.
    async with werk.AsyncClientPool(size=4) as pool:
        app.state.faktory = pool
        yield


app = FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    email: str


@app.post("/signups", status_code=202)
async def signup(body: Signup, request: Request) -> dict[str, str]:
    pool: werk.AsyncClientPool = request.app.state.faktory
    jid = await pool.push("SendWelcomeEmail", body.email, queue="mail")
    return {"jid": jid}

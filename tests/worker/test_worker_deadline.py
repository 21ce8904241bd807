"""The shutdown deadline and a sync handler that returns just after it.

Python cannot stop a thread: the deadline claims the job and FAILs it back, last thing
before the worker stops. A handler that returns successfully before that FAIL goes out has
done its work, so the job gets its ACK instead: a retry would run it a second time.
"""

from __future__ import annotations

import threading

import pytest
from tests.worker.helpers import end_parked_fetches, wait_until

import werk
from werk.server import EmbeddedServer


@pytest.mark.parametrize("executor", ["thread", "asyncio"])
def test_a_handler_returning_after_the_deadline_is_acknowledged_not_failed(
    clock_server: EmbeddedServer, executor: str
) -> None:
    srv = clock_server
    app = werk.App(srv.url)
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    @app.job
    def slow() -> None:
        started.set()
        release.wait(30)
        finished.append(werk.current_job().jid)

    jid = slow.push()
    worker = werk.Worker(app, concurrency=2, shutdown_timeout=0.1, executor=executor)  # type: ignore[arg-type]
    worker.start()
    try:
        assert started.wait(10)
        worker.terminate()
        # The deadline claimed the job. The FAILs wait for the idle slot's FETCH, which
        # blocks until the server's clock moves: the handler returns meanwhile.
        wait_until(lambda: worker.abandoned == 1, what="the deadline")
        release.set()
        wait_until(lambda: finished == [jid], what="the handler to return")
        while not worker.wait(0.02):
            end_parked_fetches(srv)
    finally:
        release.set()
    info = srv.info()
    assert (info["processed"], info["failures"]) == (1, 0), info
    assert (info["retries"], info["working"]) == (0, 0), info
    assert worker.abandoned == 0
    assert (worker.processed, worker.failed) == (1, 0)
    app.close()

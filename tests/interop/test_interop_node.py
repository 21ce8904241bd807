"""The Node Faktory client (npm ``faktory-worker``) against werk's server, over real TCP.

tests/interop/node/interop.js pushes jobs, runs a ``Worker`` (one job throws, so it FAILs
with a backtrace), reacts to quiet/terminate in BEAT replies and MUTATEs the sets; at each
step this test checks the server's own state. Needs ``node`` and ``npm install`` in
tests/interop/node (skipped otherwise, unless WERK_REQUIRE_INTEROP=1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.interop.helpers import (
    Script,
    dead,
    need,
    retries,
    signal_worker,
    wait_until,
    workers,
)

from werk.server import EmbeddedServer

NODE_DIR = Path(__file__).resolve().parent / "node"

pytestmark = pytest.mark.slow  # a few seconds each: node start-up plus 2 s blocking FETCHes


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    need(path is not None, "node (Node.js)")
    need(
        (NODE_DIR / "node_modules" / "faktory-worker").is_dir(),
        "faktory-worker (run `npm install` in tests/interop/node)",
    )
    assert path is not None
    return path


def test_node_client_and_worker_round_trip(node: str, interop_server: EmbeddedServer) -> None:
    srv = interop_server
    url = srv.url_with_password
    wid = "node-interop-wid"
    env = {**os.environ, "FAKTORY_URL": url, "INTEROP_WID": wid}
    env.pop("FAKTORY_PROVIDER", None)
    script = Script([node, "interop.js"], cwd=str(NODE_DIR), env=env)
    try:
        # PUSH, PUSHB (one job rejected by the server, not lost silently), a scheduled PUSH.
        pushed = script.expect("pushed")
        jids = pushed["jids"]
        assert list(pushed["rejected"]) == [jids["bad"]]
        assert "jobtype" in pushed["rejected"][jids["bad"]]
        assert pushed["server"]["description"]
        info = srv.info()
        assert info["queues"] == {"default": 4, "critical": 1}
        assert info["scheduled"] == 1
        script.go()

        # The worker fetched everything: four ACKs, one FAIL with the Node stack as backtrace.
        worked = script.expect("worked")
        assert worked["results"] == [3, 7, 11, 15]
        assert worked["failures"] == [{"jid": jids["boom"], "message": "boom: kaput"}]
        info = srv.info()
        assert info["queues"] == {"default": 0, "critical": 0}
        assert (info["processed"], info["failures"]) == (5, 1)
        assert (info["working"], info["retries"]) == (0, 1)
        [failed] = retries(srv)
        assert failed["jid"] == jids["boom"]
        assert failed["jobtype"] == "boom" and failed["args"] == ["kaput"]
        assert failed["retry"] == 3
        failure = failed["failure"]
        assert failure["errtype"] == "BoomError"
        assert failure["message"] == "boom: kaput"
        assert failure["retry_count"] == 0 and failure["remaining"] == 3
        assert failure["backtrace"][0] == "BoomError: boom: kaput"
        assert any("interop.js" in line for line in failure["backtrace"][1:])
        # The worker process is registered under its wid with its labels and pid.
        registered = workers(srv)[wid]
        assert registered["labels"] == ["node", "interop"]
        assert registered["pid"] == worked["pid"]
        assert registered["hostname"]
        assert registered["state"] == "running"
        assert registered["connections"] >= 1
        # Quiet it as the web UI does; the next BEAT reply tells the Node worker.
        signal_worker(srv, wid, "quiet")
        script.go()

        quieted = script.expect("quiet")
        assert "quiet" in quieted["beats"]
        assert "OK" in quieted["beats"]  # plain BEATs before the signal
        assert workers(srv)[wid]["state"] == "quiet"
        signal_worker(srv, wid, "terminate")
        script.go()

        # Terminated: the worker stopped and closed every connection, so the server forgot it.
        stopped = script.expect("stopped")
        assert "terminate" in stopped["beats"]
        wait_until(lambda: wid not in workers(srv), "the stopped Node worker to be forgotten")
        script.go()

        # MUTATE: the failed job killed into the dead set, the scheduled one discarded.
        done = script.expect("done")
        script.finish()
        info = srv.info()
        assert (info["retries"], info["scheduled"], info["dead"]) == (0, 0, 1)
        assert [job["jid"] for job in dead(srv)] == [jids["boom"]]
        # INFO as the Node client read it agrees with the server.
        assert done["faktory"]["total_processed"] == 5
        assert done["faktory"]["total_failures"] == 1
        assert done["faktory"]["sets"]["dead"] == 1
    finally:
        script.kill()


def test_node_client_with_a_wrong_password_gets_the_error(
    node: str, faktory_server_password: EmbeddedServer
) -> None:
    srv = faktory_server_password
    code = (
        "const { Client } = require('faktory-worker');"
        "new Client({ url: process.env.FAKTORY_URL }).connect()"
        ".then(() => { console.log('connected'); process.exit(0); },"
        " (e) => { console.log('rejected: ' + e.message); process.exit(3); });"
    )
    env = {**os.environ, "FAKTORY_URL": srv.url.replace("tcp://", "tcp://:wrong@")}
    out = subprocess.run(
        [node, "-e", code], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "Invalid password" in out.stdout
    assert srv.info()["workers"] == 0

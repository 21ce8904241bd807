"""`werk worker --log-format json`: every line of stderr is one JSON object."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.worker.helpers import ROOT, WERK, subprocess_env, wait_until

import werk
from werk._jsonlog import JsonFormatter
from werk.server import EmbeddedServer

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.slow
def test_a_worker_logs_one_json_object_per_line(server: EmbeddedServer, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*WERK, "worker", "tests.worker.sample_jobs:app", "-c", "2", "--log-format", "json"],
        cwd=ROOT,
        env=subprocess_env(server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with werk.Client(server.url) as client:
            ok = client.push("record", str(tmp_path), "ok", queue="default")
            bad = client.push("boom", "no luck\nsecond line", retry=0)
        wait_until(lambda: server.info()["processed"] == 2, timeout=30, what="both jobs")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = err.splitlines()
    records = [json.loads(line) for line in lines]  # every line parses, or the test fails
    assert len(records) >= 3, err  # at least start-up, done and failed
    for rec in records:
        assert RFC3339_UTC.match(rec["time"]), rec
        assert rec["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, rec
        assert rec["logger"].startswith("werk"), rec
        assert isinstance(rec["message"], str), rec
    by_jid = {rec["jid"]: rec for rec in records if "jid" in rec}
    done = by_jid[ok]
    assert done["level"] == "INFO" and done["jobtype"] == "record" and done["queue"] == "default"
    assert isinstance(done["duration"], float) and done["duration"] >= 0
    failed = by_jid[bad]
    assert failed["level"] == "WARNING" and failed["jobtype"] == "boom"
    assert failed["errtype"] == "RuntimeError" and "no luck" in failed["message"]
    assert "errtype" not in done


def test_the_formatter_keeps_extras_tracebacks_and_odd_values_on_one_line() -> None:
    log = logging.getLogger("werk.test.json")
    record = log.makeRecord(
        log.name,
        logging.ERROR,
        __file__,
        1,
        "a\nb %s",
        ("x",),
        None,
        extra={"jid": "j1", "obj": {1}},
    )
    try:
        raise ValueError("inner")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "a\nb x" and out["jid"] == "j1" and out["obj"] == "{1}"
    assert out["level"] == "ERROR" and out["logger"] == "werk.test.json"
    assert "ValueError: inner" in out["exception"]
    assert RFC3339_UTC.match(out["time"])

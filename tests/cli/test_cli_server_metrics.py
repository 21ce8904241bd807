"""``werk server --metrics-bind`` (no web UI needed) and ``--log-format json``; without
prometheus_client the flag stops the start and the web UI's /metrics says what to install."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import werk

pytestmark = pytest.mark.slow

_SRC = str(Path(__file__).resolve().parents[2] / "src")

# Runs `werk server`, optionally with prometheus_client made unimportable.
_LAUNCH = """
import sys
sys.path.insert(0, {src!r})
if {hide!r}:
    class _Hide:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "prometheus_client":
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, _Hide())
from werk.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(*args: str, hide: bool = False) -> subprocess.Popen[str]:
    code = _LAUNCH.format(src=_SRC, hide=hide)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "server",
            "--storage",
            "memory",
            "--bind",
            "127.0.0.1:0",
            *args,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], pattern: str, lines: list[str]) -> re.Match[str]:
    assert proc.stderr is not None
    end = time.monotonic() + 30
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"never saw {pattern!r} in:\n{''.join(lines)}")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _stop(proc: subprocess.Popen[str], lines: list[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=30)
    lines.extend(rest.splitlines(keepends=True))
    assert proc.returncode == 0, "".join(lines)


def test_metrics_bind_serves_metrics_without_the_web_ui_and_logs_are_json() -> None:
    port = _free_port()
    proc = _start("--no-web", "--metrics-bind", f"127.0.0.1:{port}", "--log-format", "json")
    lines: list[str] = []
    try:
        listening = _read_until(proc, r"listening on (tcp://127\.0\.0\.1:\d+)", lines)
        _read_until(proc, rf"metrics at http://127\.0\.0\.1:{port}/metrics", lines)
        with werk.Client(listening.group(1)) as client:
            client.push(werk.Job("A", [1], queue="alpha"))
            client.push(werk.Job("A", [2], queue="alpha"))
            job = client.fetch("alpha")
            assert job is not None
            client.ack(job.jid)
            status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200, text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("werk_server_queue_jobs", (("queue", "alpha"),))] == 1
        assert samples[("werk_server_jobs_processed_total", ())] == 1
        assert samples[("werk_server_commands_total", (("verb", "PUSH"),))] == 2
        assert samples[("werk_server_connections", ())] == 1
        assert _get(f"http://127.0.0.1:{port}/")[0] == 404
    finally:
        _stop(proc, lines)
    records = [json.loads(line) for line in lines if line.strip()]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(records[0])
    messages = [r["message"] for r in records]
    assert any(m.startswith("werk ") and "listening on" in m for m in messages)
    assert "werk server stopped" in messages
    assert all(r["logger"].startswith("werk.") for r in records)


def test_metrics_bind_without_prometheus_client_stops_the_start() -> None:
    proc = _start("--no-web", "--metrics-bind", f"127.0.0.1:{_free_port()}", hide=True)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "--metrics-bind needs prometheus_client: pip install 'werk[metrics]'" in err
    assert "Traceback" not in err


def test_the_web_ui_metrics_page_says_what_to_install_without_prometheus_client() -> None:
    port = _free_port()
    proc = _start("--web-bind", f"127.0.0.1:{port}", hide=True)
    lines: list[str] = []
    try:
        _read_until(proc, rf"web UI at http://127\.0\.0\.1:{port}", lines)
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 503
        assert "pip install 'werk[metrics]'" in text
        assert _get(f"http://127.0.0.1:{port}/")[0] == 200  # the pages work all the same
    finally:
        _stop(proc, lines)

"""werk push / info / worker / demo, through main() and as real processes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from tests.worker.helpers import ROOT, WERK, subprocess_env

import werk
from werk.cli import main
from werk.cli.worker import load_app
from werk.server import EmbeddedServer


def test_push_prints_the_jid_and_sends_every_option(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "push",
            "SendEmail",
            '["ann@example.com", {"template": "welcome"}]',
            "--queue",
            "mail",
            "--retry",
            "3",
            "--reserve-for",
            "120",
            "--custom",
            '{"trace": "abc"}',
            "--url",
            server.url,
        ]
    )
    assert code == 0
    jid = capsys.readouterr().out.strip()
    with werk.Client(server.url) as client:
        job = client.fetch("mail")
    assert job is not None
    assert (job.jid, job.jobtype, job.args) == (
        jid,
        "SendEmail",
        ["ann@example.com", {"template": "welcome"}],
    )
    assert (job.retry, job.reserve_for, job.custom) == (3, 120, {"trace": "abc"})


def test_push_schedules_and_accepts_a_single_argument(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["push", "Later", "42", "--in", "600", "--url", server.url]) == 0
    assert main(["push", "At", "--at", "2099-01-01T00:00:00Z", "--url", server.url]) == 0
    assert server.info()["scheduled"] == 2


def test_push_reports_bad_input_clearly(
    server: EmbeddedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["push", "X", "[1,", "--url", server.url])
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["push", "X", "--queue", "bad queue", "--url", server.url]) == 1
    assert "queue" in capsys.readouterr().err
    assert server.info()["queues"] == {}  # nothing was sent


def test_info_table_and_json(server: EmbeddedServer, capsys: pytest.CaptureFixture[str]) -> None:
    with werk.Client(server.url) as client:
        client.push("A", 1, queue="mail")
        client.push("B", 2, queue="mail")
        client.push("C", 3, queue="critical")
    assert main(["info", "--url", server.url]) == 0
    table = capsys.readouterr().out
    assert "mail" in table and "critical" in table
    assert any(line.split() == ["mail", "2"] for line in table.splitlines())
    assert main(["info", "--json", "--url", server.url]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["faktory"]["queues"] == {"critical": 1, "mail": 2}


def test_info_without_a_server_fails_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--url", "tcp://127.0.0.1:1"]) == 1
    assert "werk info:" in capsys.readouterr().err


def test_load_app_finds_the_app_or_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_app("tests.worker.sample_jobs") is load_app("tests.worker.sample_jobs:app")
    (tmp_path / "two_apps.py").write_text("import werk\na = werk.App()\nb = werk.App()\n")
    (tmp_path / "no_app.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(werk.ConfigurationError, match="several"):
        load_app("two_apps")
    assert isinstance(load_app("two_apps:b"), werk.App)
    with pytest.raises(werk.ConfigurationError, match=r"no werk\.App"):
        load_app("no_app")
    with pytest.raises(werk.ConfigurationError, match="cannot import"):
        load_app("does_not_exist_anywhere")


def test_worker_help_explains_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    text = capsys.readouterr().out
    for option in ("--concurrency", "--queue", "--label", "--shutdown-timeout", "--executor"):
        assert option in text


def test_worker_command_with_weighted_queues_and_labels(server: EmbeddedServer) -> None:
    proc = subprocess.Popen(
        [
            *WERK,
            "worker",
            "tests.worker.sample_jobs:app",
            "-c",
            "3",
            "-q",
            "critical,3",
            "-q",
            "default,1",
            "-l",
            "cli-test",
            "--executor",
            "asyncio",
        ],
        cwd=ROOT,
        env=subprocess_env(server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with werk.Client(server.url) as client:
            client.push("boom", "x", queue="critical", retry=0)
            client.push("boom", "y", retry=0)
        deadline = time.monotonic() + 20
        while server.info()["processed"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = server.call(
            lambda: [w.to_dict() for w in server.manager.workers.workers.values()]
        )
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert server.info()["processed"] == 2, output
    assert workers and workers[0]["labels"] == ["cli-test"]
    assert "critical:3, default (weighted)" in output
    assert proc.returncode == 0


@pytest.mark.slow
def test_demo_finishes_on_its_own_and_exits_0() -> None:
    env = subprocess_env("")
    env.pop("FAKTORY_URL")
    env.pop("FAKTORY_PROVIDER", None)
    started = time.monotonic()
    proc = subprocess.run(
        [*WERK, "demo", "--no-web"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started < 30
    out = proc.stdout
    assert "25/25 jobs finished, 1 failed" in out
    assert "PaymentDeclinedError" in out
    assert "What to try next" in out

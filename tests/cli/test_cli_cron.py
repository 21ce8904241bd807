"""werk cron: the entries of a configuration directory and their next runs, checked as
the server checks them; a bad file is one line with its name and line, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from werk.cli import main

CRON = """\
[[cron]]
  schedule = "*/5 * * * *"
  [cron.job]
    type = "FiveJob"
    queue = "critical"
    args = [1]

[[cron]]
schedule = "0 9 * * MON-FRI"
job = { type = "Report" }
"""


def conf(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "conf.d").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "conf.d" / name).write_text(text)
    return tmp_path


def test_lists_entries_and_next_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = conf(tmp_path, **{"cron.toml": CRON})
    assert (
        main(["cron", "--config-dir", str(d), "--at", "2025-01-03T17:58:00Z", "--next", "2"]) == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "SCHEDULE         TYPE     QUEUE     NEXT RUN                          WHERE",
        "*/5 * * * *      FiveJob  critical  2025-01-03 18:00 UTC (in 2m 0s)   conf.d/cron.toml:1",
        "                                    2025-01-03 18:05 UTC",
        "0 9 * * MON-FRI  Report   default   2025-01-06 09:00 UTC (in 2d 15h)  conf.d/cron.toml:8",
        "                                    2025-01-07 09:00 UTC",
    ]


def test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = conf(tmp_path, **{"cron.toml": CRON})
    assert main(["cron", "--config-dir", str(d), "--at", "2025-01-03T17:58:00Z", "--json"]) == 0
    five, report = json.loads(capsys.readouterr().out)
    assert five["job"] == {"type": "FiveJob", "queue": "critical", "args": [1]}
    assert five["next"] == ["2025-01-03T18:00:00Z"] and five["where"] == "conf.d/cron.toml:1"
    assert report["schedule"] == "0 9 * * MON-FRI" and len(report["id"]) == 16


def test_no_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = conf(tmp_path, **{"throttles.toml": "[faktory]\n"})
    assert main(["cron", "--config-dir", str(d)]) == 0
    assert capsys.readouterr().out == f"no cron entries in {d}/conf.d\n"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"a.toml": CRON, "b.toml": "[[cron]]\nschedule = '@every 1h'\njob = {type = 'T'}\n"},
            "conf.d/b.toml:2: cron",
        ),
        ({"a.toml": "[[cron]\n"}, "conf.d/a.toml:1: TOML syntax error"),
        ({"a.toml": CRON + "[crons]\n"}, "conf.d/a.toml:11: unknown table 'crons'"),
        ({"a.toml": CRON.replace("args = [1]", "args = 1")}, "conf.d/a.toml:6: cron.job.args must"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], message: str
) -> None:
    d = conf(tmp_path, **files)
    assert main(["cron", "--config-dir", str(d)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"werk cron: {message}") and out.err.count("\n") == 1


def test_the_script(tmp_path: Path) -> None:
    d = conf(tmp_path, **{"cron.toml": "[[cron]]\nschedule = '@daily'\njob = {type = 'T'}\n"})
    done = subprocess.run(
        [sys.executable, "-m", "werk", "cron", "--config-dir", str(d)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "@daily" in done.stdout and "conf.d/cron.toml:1" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "werk", "cron", "--config-dir", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "is not a directory" in missing.stderr

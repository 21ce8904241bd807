"""werk server: a bad setting stops the start with one line, never a traceback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from werk.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bind", "localhost"], "bind address must be HOST:PORT, not 'localhost'"),
        (["--web-bind", "nowhere"], "bind address must be HOST:PORT, not 'nowhere'"),
        (["--config-dir", "/no/such/dir"], "config_dir '/no/such/dir' is not a directory"),
        (["--max-line", "0"], "max_line must be a number above 0, not 0"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_1(
    args: list[str], message: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="werk.server")
    code = main(["server", "--storage", "memory", "--data", str(tmp_path), *args])
    assert code == 1
    assert [r.getMessage() for r in caplog.records] == [f"cannot start: {message}"]

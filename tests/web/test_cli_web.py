"""``werk server`` serves the pages on 127.0.0.1:7420 unless told otherwise (``--web-bind``,
``--no-web``); without the ``web`` extra the server still runs and says how to get them."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_SRC = str(Path(__file__).resolve().parents[2] / "src")

# Runs `werk server`, optionally with aiohttp made unimportable (as if werk[web] were absent).
_LAUNCH = """
import sys
sys.path.insert(0, {src!r})
if {hide_web!r}:
    class _NoWeb:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("aiohttp", "jinja2"):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, _NoWeb())
from werk.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(web_port: int | None, hide_web: bool, *extra: str) -> subprocess.Popen[str]:
    code = _LAUNCH.format(src=_SRC, hide_web=hide_web)
    args = ["server", "--storage", "memory", "--bind", "127.0.0.1:0", *extra]
    if web_port is not None:
        args += ["--web-bind", f"127.0.0.1:{web_port}"]
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def _wait_for(proc: subprocess.Popen[str], pattern: str, deadline: float = 20.0) -> str:
    assert proc.stderr is not None
    seen = ""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if re.search(pattern, seen):
            return seen
    raise AssertionError(f"never saw {pattern!r} in:\n{seen}")


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_server_serves_the_web_ui_on_web_bind() -> None:
    port = _free_port()
    proc = _run(port, hide_web=False)
    try:
        _wait_for(proc, rf"web UI at http://127\.0\.0\.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200
            assert "Dashboard" in resp.read().decode()
    finally:
        assert _stop(proc) == 0


def test_server_without_the_web_extra_runs_and_says_how_to_get_it() -> None:
    port = _free_port()
    proc = _run(port, hide_web=True)
    try:
        log = _wait_for(proc, r"pip install 'werk\[web\]'")
        match = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", log)
        assert match is not None, log
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=5) as conn:
            assert conn.recv(64).startswith(b"+HI ")  # the command port works
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        assert _stop(proc) == 0


def _listening_port(log: str) -> int:
    match = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", log)
    assert match is not None, log
    return int(match.group(1))


def test_the_web_ui_is_on_by_default_at_7420() -> None:
    from werk.cli import build_parser
    from werk.cli._server import config_from_args

    args = build_parser().parse_args(["server"])
    assert args.web_bind is None and not args.no_web  # None: the default, 127.0.0.1:7420
    config_from_args(args)  # the settings build without a web address
    # Whoever holds 7420 (this test, or anything else on the machine), the default web
    # port being taken only costs the pages: the job server runs and says why.
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 7420))
        holder.listen()
    except OSError:
        holder.close()  # taken already: just as good
    proc = _run(None, hide_web=False)
    try:
        log = _wait_for(proc, r"web UI not started on 127\.0\.0\.1:7420")
        assert "--no-web" in log
        with socket.create_connection(("127.0.0.1", _listening_port(log)), timeout=5) as conn:
            assert conn.recv(64).startswith(b"+HI ")
    finally:
        assert _stop(proc) == 0
        holder.close()


def test_an_explicit_web_bind_that_is_taken_stops_the_start() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        proc = _run(holder.getsockname()[1], hide_web=False)
        try:
            assert proc.wait(20) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.stderr is not None
        assert "cannot start" in proc.stderr.read()


def test_no_web_serves_no_pages_and_says_nothing_about_them() -> None:
    proc = _run(None, True, "--no-web")
    try:
        log = _wait_for(proc, r"listening on tcp://")
        with socket.create_connection(("127.0.0.1", _listening_port(log)), timeout=5) as conn:
            assert conn.recv(64).startswith(b"+HI ")
    finally:
        assert _stop(proc) == 0
    assert proc.stderr is not None
    rest = log + proc.stderr.read()
    assert "web UI" not in rest and "werk[web]" not in rest


def test_without_the_extra_the_default_start_says_once_how_to_get_the_pages() -> None:
    proc = _run(None, hide_web=True)
    try:
        log = _wait_for(proc, r"pip install 'werk\[web\]'")
        _listening_port(log)
    finally:
        assert _stop(proc) == 0
    assert proc.stderr is not None
    assert (log + proc.stderr.read()).count("werk[web]") == 1

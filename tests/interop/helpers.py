"""Helpers shared by the interop tests (other Faktory clients against werk's server)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from werk.server import EmbeddedServer

REQUIRE_ENV = "WERK_REQUIRE_INTEROP"


def need(available: bool, what: str) -> None:
    """Skip the test when ``what`` is missing, or fail it when CI said interop must run."""
    if available:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{what} is missing but {REQUIRE_ENV}=1 says the interop tests must run")
    pytest.skip(f"{what} is missing (set {REQUIRE_ENV}=1 to make this a failure)")


def wait_until(cond: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``cond`` until true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def retries(srv: EmbeddedServer) -> list[dict[str, Any]]:
    """The jobs in the server's retry set, decoded, in retry order."""
    return [json.loads(e.payload) for e in srv.call(lambda: srv.manager.retries.ordered())]


def dead(srv: EmbeddedServer) -> list[dict[str, Any]]:
    """The jobs in the server's dead set, decoded."""
    return [json.loads(e.payload) for e in srv.call(lambda: srv.manager.dead.ordered())]


def workers(srv: EmbeddedServer) -> dict[str, dict[str, Any]]:
    """The registered worker processes by wid: what each sent in HELLO, its state, its sockets."""

    def read() -> dict[str, dict[str, Any]]:
        return {
            wid: {
                "hostname": w.hostname,
                "pid": w.pid,
                "labels": list(w.labels),
                "state": w.state or "running",
                "connections": len(w.connections),
            }
            for wid, w in srv.manager.workers.workers.items()
        }

    return srv.call(read)


def signal_worker(srv: EmbeddedServer, wid: str, state: str) -> None:
    """Quiet or terminate a worker as the web UI does: its next BEAT reply carries the state."""
    assert srv.call(srv.manager.workers.signal, wid, state) == 1


class Script:
    """A child process that reports steps as JSON lines on stdout and waits for "go" on stdin."""

    def __init__(self, args: list[str], *, cwd: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr.extend(self.proc.stderr)

    def expect(self, step: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait for the script to report ``step``; fail with its stderr if it does not."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = "<nothing>"
        if line is None or line == "<nothing>" or not line.startswith("{"):
            self.kill()
            pytest.fail(f"expected step {step!r}, got {line!r}; stderr:\n{''.join(self._stderr)}")
        report: dict[str, Any] = json.loads(line)
        assert report["step"] == step, (report, "".join(self._stderr))
        return report

    def go(self) -> None:
        """Let the script go on to its next step."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 15.0) -> None:
        """Wait for a clean exit (code 0)."""
        code = self.proc.wait(timeout)
        time.sleep(0.05)  # let the stderr pump catch the last lines
        assert code == 0, "".join(self._stderr)

    def kill(self) -> None:
        """Stop the script if it still runs (test clean-up)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

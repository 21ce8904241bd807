"""Jobs used by tests that run the worker in another process (``werk worker``, children).

Each job records what it did in files under the directory it is given, so the test can
check what ran, how often, and in which process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import werk
from werk.worker import App

app = App()


def _mark(directory: str, name: str, text: str = "") -> None:
    path = Path(directory) / name
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()} {text}\n")


@app.job
def record(directory: str, name: str) -> None:
    """Append this process's pid to ``directory/name``."""
    _mark(directory, name, werk.current_job().jid)


@app.job
def environment(directory: str, name: str, variable: str) -> None:
    """Append this process's pid and the value of ``variable`` to ``directory/name``."""
    _mark(directory, name, os.environ.get(variable, "<unset>"))


@app.job
def sleepy(directory: str, name: str, seconds: float) -> None:
    """Mark the start, sleep, mark the end."""
    _mark(directory, f"{name}.start")
    time.sleep(seconds)
    _mark(directory, f"{name}.end")


@app.job
async def async_record(directory: str, name: str) -> None:
    """The async twin of ``record``."""
    _mark(directory, name, werk.current_job().jid)


@app.job
def crash(directory: str, name: str, how: str) -> None:
    """Die in the middle of the job: ``exit`` (os._exit) or ``kill`` (SIGKILL to itself)."""
    _mark(directory, f"{name}.start")
    if how == "exit":
        os._exit(7)
    os.kill(os.getpid(), signal.SIGKILL)


@app.job
def boom(message: str) -> None:
    """Always raises."""
    raise RuntimeError(message)


@app.job
def gated(directory: str, name: str) -> None:
    """Mark the start, then wait (up to 60 s) until the test creates ``name.go``."""
    _mark(directory, f"{name}.start")
    go = Path(directory) / f"{name}.go"
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    _mark(directory, f"{name}.end")


@app.job
def fan_out(directory: str, count: int) -> None:
    """In a batch member: report progress, then open a child batch of ``count`` ``record``
    jobs whose success callback records ``child-done`` (all through the job's context)."""
    ctx = werk.current_job()
    ctx.track(10, "opening a child batch")
    done = werk.Job("record", [directory, "child-done"])
    with ctx.child_batch(description="fan-out", success=done) as batch:
        for n in range(count):
            batch.push("record", directory, f"member-{n}")
    ctx.track(100, "child batch committed")
    _mark(directory, "fan-out", f"{batch.bid} {ctx.bid}")

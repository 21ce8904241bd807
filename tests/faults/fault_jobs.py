"""The jobs the fault suite runs: every run is written to one ledger file per test.

Each line of ``DIRECTORY/ledger`` is ``EVENT PID JID`` (one small ``O_APPEND`` write, so lines
from several processes never interleave): ``done`` for a quick job, ``start`` and ``end`` around
a long one. A test reads it back with :class:`tests.faults.harness.Ledger` to tell what ran,
how often, in which process, and whether a job that was stopped ran on to its end.

Run by ``werk worker tests.faults.fault_jobs:app`` (and by ``library_worker.py``).
"""

from __future__ import annotations

import asyncio
import os
import time

import werk
from werk.worker import App

app = App()


def note(directory: str, event: str, jid: str) -> None:
    """Append ``EVENT PID JID`` to ``directory/ledger``."""
    line = f"{event} {os.getpid()} {jid}\n".encode()
    fd = os.open(os.path.join(directory, "ledger"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@app.job
def record(directory: str, padding: str = "", pause: float = 0.0) -> None:
    """A quick job: one ``done`` line, after ``pause`` seconds (``padding`` only makes the
    job bigger)."""
    if pause:
        time.sleep(pause)
    note(directory, "done", werk.current_job().jid)


@app.job
def sleepy(directory: str, seconds: float) -> None:
    """A long sync job (on a thread, or in a child): ``start``, sleep, ``end``."""
    jid = werk.current_job().jid
    note(directory, "start", jid)
    time.sleep(seconds)
    note(directory, "end", jid)


@app.job
async def async_sleepy(directory: str, seconds: float) -> None:
    """A long async job: ``start``, ``await asyncio.sleep``, ``end``."""
    jid = werk.current_job().jid
    note(directory, "start", jid)
    await asyncio.sleep(seconds)
    note(directory, "end", jid)


def _sleep_then_note(directory: str, seconds: float, jid: str) -> None:
    time.sleep(seconds)
    note(directory, "end", jid)


@app.job
async def offloaded_sleepy(directory: str, seconds: float) -> None:
    """An async job whose work runs in ``asyncio.to_thread``: the thread writes ``end``."""
    jid = werk.current_job().jid
    note(directory, "start", jid)
    await asyncio.to_thread(_sleep_then_note, directory, seconds, jid)


@app.job
def gated(directory: str, gate: str) -> None:
    """``start``, wait until the file ``directory/gate`` exists (the test opens it), ``end``."""
    jid = werk.current_job().jid
    note(directory, "start", jid)
    path = os.path.join(directory, gate)
    while not os.path.exists(path):
        time.sleep(0.02)
    note(directory, "end", jid)

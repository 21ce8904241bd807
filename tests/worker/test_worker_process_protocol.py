"""The process executor's pipe: frames as bytes, a real child's replies, an idle child's death."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.worker import sample_jobs
from tests.worker.helpers import running, wait_until

import werk
from werk.server import EmbeddedServer
from werk.worker._child import Channel
from werk.worker._children import ChildProcess

pytestmark = pytest.mark.skipif(os.name != "posix", reason="reads frames from the pipe's fd")

REF = "tests.worker.sample_jobs:app"


@pytest.fixture
def pipe() -> Iterator[tuple[Channel, multiprocessing.connection.Connection]]:
    here, there = multiprocessing.Pipe(duplex=True)
    yield Channel(here), there
    here.close()
    there.close()


def test_a_frame_is_what_recv_bytes_reads(
    pipe: tuple[Channel, multiprocessing.connection.Connection],
) -> None:
    channel, there = pipe
    channel.send(b'\x05{"jid":"abc"}')
    channel.send(b"")
    assert there.recv_bytes() == b'\x05{"jid":"abc"}'
    assert there.recv_bytes() == b""  # an empty frame (the child's "done") is a frame


def test_a_frame_split_across_writes_is_put_back_together(
    pipe: tuple[Channel, multiprocessing.connection.Connection],
) -> None:
    channel, there = pipe
    fd = there.fileno()
    body = b"x" * 300_000  # bigger than one read
    frame = struct.pack("!i", len(body)) + body
    writer = threading.Thread(
        target=lambda: [os.write(fd, frame[i : i + 7001]) for i in range(0, len(frame), 7001)]
    )
    writer.start()
    assert channel.recv() == body
    writer.join()


def test_a_header_in_pieces_and_a_short_frame(
    pipe: tuple[Channel, multiprocessing.connection.Connection],
) -> None:
    channel, there = pipe
    fd = there.fileno()
    os.write(fd, b"\x00\x00")  # even the header may arrive in pieces
    writer = threading.Thread(target=lambda: os.write(fd, b"\x00\x03abc"))
    writer.start()
    assert channel.recv() == b"abc"
    writer.join()


def test_the_other_end_closing_mid_frame_is_eof(
    pipe: tuple[Channel, multiprocessing.connection.Connection],
) -> None:
    channel, there = pipe
    os.write(there.fileno(), struct.pack("!i", 10) + b"half")
    there.close()
    with pytest.raises(EOFError):
        channel.recv()


def test_sending_to_a_closed_end_raises_oserror(
    pipe: tuple[Channel, multiprocessing.connection.Connection],
) -> None:
    channel, there = pipe
    there.close()
    with pytest.raises(OSError):
        channel.send(b"job")


def _frame(limit: int, jobtype: str, *args: object) -> bytes:
    payload = {"jid": f"jid-{jobtype}", "jobtype": jobtype, "args": list(args), "queue": "q"}
    return bytes((limit,)) + pickle.dumps((payload, None, None))  # no timeout


@pytest.mark.slow
def test_a_real_child_runs_jobs_and_reports_failures(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    child = ChildProcess(ctx, REF, "wid-1", 0)
    try:
        child.wait_ready()
        child.send(_frame(5, "record", str(tmp_path), "ran"))
        assert child.outcome() is None
        pid, jid = (tmp_path / "ran").read_text().split()
        assert int(pid) == child.proc.pid and jid == "jid-record"  # current_job() in the child

        child.send(_frame(5, "boom", "from the child"))
        outcome = child.outcome()
        assert outcome is not None
        errtype, message, backtrace = outcome
        assert (errtype, message) == ("RuntimeError", "from the child")
        assert 1 <= len(backtrace) <= 5
        assert "sample_jobs.py" in backtrace[0] and "in boom" in backtrace[0]
        assert not any("processes.py" in line for line in backtrace)  # werk's frames left out

        child.send(_frame(0, "boom", "no backtrace wanted"))
        assert child.outcome() == ("RuntimeError", "no backtrace wanted", [])

        child.send(_frame(3, "not_registered"))
        outcome = child.outcome()
        assert outcome is not None
        errtype, message, backtrace = outcome
        # The same errtype and message as when the worker itself finds no handler.
        assert errtype == "UnknownJobType" and backtrace == []
        assert message.startswith("no handler registered for job type 'not_registered' (known:")
        assert "record" in message
        assert child.proc.is_alive()  # none of that hurt the child
    finally:
        child.stop()
    assert not child.proc.is_alive()  # closing its pipe ends an idle child


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process state in /proc")
def test_a_child_that_died_while_idle_is_replaced_before_it_gets_a_job(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    worker = werk.Worker(sample_jobs.app, server.url, concurrency=1, executor="process")
    with running(worker, server), werk.Client(server.url) as client:
        client.push("record", str(tmp_path), "first")
        wait_until(lambda: server.info()["processed"] == 1, timeout=30, what="the first job")
        first = int((tmp_path / "first").read_text().split()[0])
        os.kill(first, signal.SIGKILL)  # the OOM killer, between two jobs
        wait_until(lambda: _state(first) in ("Z", "X", "gone"), what="the child to die")
        # The main thread's zombie state can come before the child's other threads (its
        # lifeline) are gone and its pipes closed: wait for that, as the parent would see it.
        child = worker._executor._children[0]  # type: ignore[union-attr]
        assert child is not None and child.proc.pid == first
        assert multiprocessing.connection.wait([child.proc.sentinel], 10)
        client.push("record", str(tmp_path), "second")
        wait_until(lambda: server.info()["processed"] == 2, timeout=30, what="the second job")
    second = int((tmp_path / "second").read_text().split()[0])
    assert second not in (first, os.getpid())  # ran, in a new child
    assert server.info()["failures"] == 0  # the job never reached the dead child: no FAIL

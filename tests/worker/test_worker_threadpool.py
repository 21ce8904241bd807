"""The daemon thread pool that runs sync handlers on the asyncio executor (and to_thread)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest
from tests.worker.helpers import ROOT, subprocess_env

from werk.worker._threadpool import DaemonThreadPool


def test_runs_work_on_reused_daemon_threads() -> None:
    pool = DaemonThreadPool(2, "t-pool")
    try:
        names = [pool.submit(lambda: threading.current_thread().name).result(5) for _ in range(5)]
        assert set(names) <= {"t-pool-0", "t-pool-1"}
        assert len(pool._started) <= 2
        assert all(t.daemon for t in pool._started)
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(5)
        assert list(pool.map(abs, [-1, -2, 3])) == [1, 2, 3]
    finally:
        pool.shutdown()
    assert not any(t.is_alive() for t in pool._started)
    with pytest.raises(RuntimeError):
        pool.submit(abs, 1)


def test_shutdown_cancels_work_not_started() -> None:
    pool = DaemonThreadPool(1)
    release = threading.Event()
    busy = pool.submit(release.wait, 10)
    waiting = pool.submit(abs, -1)
    pool.shutdown(wait=False, cancel_futures=True)
    assert waiting.cancelled()
    release.set()
    assert busy.result(5) is True


async def test_is_accepted_as_a_loops_default_executor() -> None:
    pool = DaemonThreadPool(None, "t-default")
    asyncio.get_running_loop().set_default_executor(pool)
    name = await asyncio.to_thread(lambda: threading.current_thread().name)
    assert name.startswith("t-default-")


def test_a_busy_pool_thread_does_not_hold_the_process_open() -> None:
    # A ThreadPoolExecutor's thread would keep this process alive for 60 s (atexit join).
    script = (
        "import time\n"
        "from werk.worker._threadpool import DaemonThreadPool\n"
        "pool = DaemonThreadPool(1)\n"
        "pool.submit(time.sleep, 60)\n"
        "time.sleep(0.1)\n"
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(""), check=True, timeout=30
    )
    assert time.monotonic() - started < 10

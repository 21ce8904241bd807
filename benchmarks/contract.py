"""A program that keeps the ``--external`` contract (see ``_external.py``), written with the
benchmarks' hand-written connection and no werk in it: the floor a Python program reaches.

    python benchmarks/client.py --external bare="python benchmarks/contract.py"
    python benchmarks/worker.py --external bare="python benchmarks/contract.py"

It reads FAKTORY_URL (``tcp://[:password@]host:port``; no password, no TLS), BENCH_ROW,
BENCH_JOBS, BENCH_QUEUE and BENCH_CONCURRENCY, does the row, and prints
``{"jobs_per_s": ..., "cpu_us_per_job": ...}`` on one line. Its ``worker`` row is one
thread per unit of concurrency, each with its own connection, acknowledging every job
(a no-op handler), until BENCH_JOBS jobs have been acknowledged in all.
"""

from __future__ import annotations

import json
import os
import threading
import time
from urllib.parse import urlsplit

from _raw import Raw


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "tcp" or parts.password:
        raise SystemExit(f"contract.py speaks plain tcp:// without a password, not {url!r}")
    return parts.hostname or "127.0.0.1", parts.port or 7419


def _jid(body: bytes) -> bytes:
    return body[body.index(b'"jid":"') + 7 :].split(b'"', 1)[0]


def push(address: tuple[str, int], n: int, queue: str) -> None:
    c = Raw(address)
    for i in range(n):
        job = {"jid": f"x-{i:012d}", "jobtype": "noop", "args": [i], "queue": queue}
        if c.call(b"PUSH " + json.dumps(job).encode() + b"\r\n") != b"+OK":
            raise RuntimeError("PUSH refused")


def pushb(address: tuple[str, int], n: int, queue: str) -> None:
    c = Raw(address)
    for start in range(0, n, 1000):
        jobs = [
            {"jid": f"b-{i:012d}", "jobtype": "noop", "args": [i], "queue": queue}
            for i in range(start, min(n, start + 1000))
        ]
        if c.call(b"PUSHB " + json.dumps(jobs).encode() + b"\r\n") != b"{}":
            raise RuntimeError("PUSHB refused some jobs")


def fetch_ack(address: tuple[str, int], n: int, queue: str) -> None:
    c = Raw(address)
    fetch = b"FETCH " + queue.encode() + b"\r\n"
    for _ in range(n):
        body = c.call(fetch)
        if body == b"$-1":
            raise RuntimeError(f"queue {queue!r} ran dry")
        if c.call(b'ACK {"jid":"' + _jid(body) + b'"}\r\n') != b"+OK":
            raise RuntimeError("ACK refused")


def worker(address: tuple[str, int], n: int, queue: str, concurrency: int) -> None:
    left = [n]
    lock = threading.Lock()
    fetch = b"FETCH " + queue.encode() + b"\r\n"
    errors: list[BaseException] = []

    def slot() -> None:
        try:
            c = Raw(address)
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                body = c.call(fetch)
                while body == b"$-1":  # the queue is briefly empty: fetch again
                    body = c.call(fetch)
                if c.call(b'ACK {"jid":"' + _jid(body) + b'"}\r\n') != b"+OK":
                    raise RuntimeError("ACK refused")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=slot) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def main() -> None:
    env = os.environ
    address = _address(env["FAKTORY_URL"])
    row, n, queue = env["BENCH_ROW"], int(env["BENCH_JOBS"]), env["BENCH_QUEUE"]
    cpu, wall = time.process_time(), time.perf_counter()
    if row == "push":
        push(address, n, queue)
    elif row == "pushb":
        pushb(address, n, queue)
    elif row == "fetch+ack":
        fetch_ack(address, n, queue)
    elif row == "worker":
        worker(address, n, queue, int(env.get("BENCH_CONCURRENCY", "1")))
    else:
        raise SystemExit(f"unknown BENCH_ROW {row!r}")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"jobs_per_s": n / wall, "cpu_us_per_job": cpu / n * 1e6}))


if __name__ == "__main__":
    main()

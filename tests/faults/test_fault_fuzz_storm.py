"""A storm of garbage lines, huge lines and pathological MUTATE patterns from several
connections, while a normal client keeps pushing, fetching and acknowledging.

The server is ``werk server`` (a real process, default limits) with a few jobs in the retry
set, so that every MUTATE has payloads to match its pattern against. What must hold: every
operation of the normal client succeeds (each within its 5 s timeout: a server whose event
loop is stuck in one command fails this), its jobs come back exactly as pushed, the server
stays up, and the retry set is untouched (no pattern here can match a JSON payload, which
ends in ``}``, so every discard must discard nothing).
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.faults.harness import SCALE
from tests.server.rawclient import Raw
from tests.server.serverproc import ServerProcess

import werk
from werk._protocol.resp import ErrorReply

pytestmark = pytest.mark.slow

STORM_SECONDS = 3.0 * SCALE
RETRIES = 5
HUGE = 16 * 1024 * 1024 + 4096  # past the default longest line (16 MiB)

# Backtracking glob matchers take exponential time on these; a linear one answers at once.
PATTERNS = [
    "*****a",
    "*" * 40 + "a",
    "*a*b*c*d*e*f*g*h*i*j*k*l*m*n*o*p*q*r*s*t*u*v*w*x*y*z*0",
    "*[a-z]*[0-9]*" * 12 + "!",
    "?" * 300 + "*x",
    "*\\**\\?*" * 10 + "q",
    "*" * 5000 + "b",
]

VERBS = [b"PUSH", b"PUSHB", b"FETCH", b"ACK", b"FAIL", b"BEAT", b"INFO", b"MUTATE", b"QUEUE"]


def _garbage_line(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # random bytes, no line break inside
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b"")
    if kind == 1:  # a verb and broken JSON
        text = '{"jid":' + "[" * rng.randrange(1, 50) + '"\\ud800'
        return rng.choice(VERBS) + b" " + text.encode()
    if kind == 2:  # a verb and deep nesting
        depth = rng.randrange(100, 5000)
        return rng.choice(VERBS) + b" " + b"[" * depth + b"]" * depth
    return rng.choice(VERBS) + b" " + json.dumps({"jid": "x" * rng.randrange(300)}).encode()


def _mutate_line(rng: random.Random) -> bytes:
    pattern = rng.choice(PATTERNS)
    body = {"cmd": "discard", "target": "retries", "filter": {"regexp": pattern}}
    return b"MUTATE " + json.dumps(body, separators=(",", ":")).encode()  # no spaces allowed


class Storm:
    """``connections`` threads, each sending one kind of abuse until stopped."""

    def __init__(self, port: int, seed: int) -> None:
        self.port = port
        self.seed = seed
        self.stop = threading.Event()
        self.open: set[socket.socket] = set()
        self.sent: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.threads = [
            threading.Thread(target=self._run, args=(kind, i), daemon=True)
            for i, kind in enumerate(["garbage", "garbage", "huge", "mutate", "mutate"])
        ]

    def start(self) -> Storm:
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> bool:
        """Stop, and unblock the threads still waiting on a stuck server; True if all ended."""
        self.stop.set()
        deadline = time.monotonic() + 15
        while any(t.is_alive() for t in self.threads) and time.monotonic() < deadline:
            for sock in list(self.open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            for t in self.threads:
                t.join(0.05)
        return not any(t.is_alive() for t in self.threads)

    @contextlib.contextmanager
    def _connect(self, hello: bool, timeout: float) -> Iterator[Raw]:
        with Raw("127.0.0.1", self.port, hello=hello, timeout=timeout) as c:
            self.open.add(c.sock)
            try:
                yield c
            finally:
                self.open.discard(c.sock)

    def _run(self, kind: str, n: int) -> None:
        rng = random.Random(self.seed * 100 + n)
        while not self.stop.is_set():
            try:
                if kind == "garbage":
                    self._garbage(rng)
                elif kind == "huge":
                    self._huge()
                else:
                    self._mutate(rng)
            except (OSError, EOFError) as exc:
                if not self.stop.is_set():  # (finish() itself breaks connections)
                    self.errors[f"{kind}: {type(exc).__name__}"] += 1
                self.stop.wait(0.05)

    def _garbage(self, rng: random.Random) -> None:
        # Half the time without HELLO (the server wants one first), half after it.
        with self._connect(hello=rng.random() < 0.5, timeout=10) as c:
            lines = [_garbage_line(rng) for _ in range(rng.randrange(1, 30))]
            c.send(b"".join(line + b"\r\n" for line in lines) + b"END\r\n")
            self.sent["garbage lines"] += len(lines)
            c.sock.settimeout(0.5)
            try:
                while c.sock.recv(1 << 16):
                    pass
            except TimeoutError:
                pass

    def _huge(self) -> None:
        with self._connect(hello=True, timeout=10) as c:
            chunk = b"PUSH " + b"x" * (1 << 20)
            sent = 0
            try:
                while sent < HUGE:
                    c.send(chunk)
                    sent += len(chunk)
                reply = c.read()  # an error, then the close
                self.sent["huge lines refused" if isinstance(reply, ErrorReply) else "?"] += 1
            except (OSError, EOFError):
                self.sent["huge lines cut off"] += 1  # hung up on before the end of the line
        self.stop.wait(0.1)  # some 150 MB/s of it is plenty

    def _mutate(self, rng: random.Random) -> None:
        with self._connect(hello=True, timeout=30) as c:
            while not self.stop.is_set():
                # Answered: +OK, or an error (a pattern may be refused as too long).
                reply = c.cmd(_mutate_line(rng))
                self.sent["pathological MUTATEs"] += 1
                self.sent["MUTATE answered OK" if reply == "OK" else "MUTATE refused"] += 1


def test_a_storm_of_abuse_does_not_disturb_a_normal_client(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as proc:
        with Raw("127.0.0.1", proc.port, wid="w-setup") as c:
            for i in range(RETRIES):
                assert c.push(f"jid-retry-{i:04d}", args=["p" * 250], retry=5) == "OK"
                job = c.fetch()
                assert c.cmd(f'FAIL {{"jid":"{job["jid"]}","message":"kept"}}') == "OK"
            assert c.info()["faktory"]["sets"]["retries"] == RETRIES
        url = f"tcp://127.0.0.1:{proc.port}"
        storm = Storm(proc.port, seed=15).start()
        done = 0
        slowest = 0.0
        try:
            with werk.Client(url, wid="w-steady", timeout=5) as client:
                end = time.monotonic() + STORM_SECONDS
                while time.monotonic() < end:
                    started = time.monotonic()
                    jid = client.push("record", "steady", queue="steady")
                    job = client.fetch("steady")
                    assert job is not None and job.jid == jid
                    client.ack(jid)
                    slowest = max(slowest, time.monotonic() - started)
                    done += 1
        finally:
            ended = storm.finish()
        assert ended, "the storm's connections got no answer"
        assert proc.proc is not None and proc.proc.poll() is None, "the server died"
        with Raw("127.0.0.1", proc.port) as c:
            faktory = c.info()["faktory"]
        print(
            f"\nstorm {STORM_SECONDS:.0f} s: {dict(storm.sent)}, client-side errors "
            f"{dict(storm.errors)}; normal client {done} push+fetch+ack rounds, slowest "
            f"{slowest * 1000:.0f} ms"
        )
        assert done > 0
        assert "Traceback" not in "".join(proc.log), "".join(proc.log)[-3000:]
        assert faktory["sets"]["retries"] == RETRIES, "a pattern discarded a job"
        assert faktory["queues"].get("steady", 0) == 0
        assert faktory["sets"]["working"] == 0
        assert storm.sent["pathological MUTATEs"] > 0 and storm.sent["huge lines refused"] > 0
        assert storm.sent["?"] == 0, "a huge line was answered with something else than -ERR"
        assert storm.sent["garbage lines"] > 0

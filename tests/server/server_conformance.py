"""Replay a real Faktory recording against werk's server and compare every reply.

Each scenario runs on a fresh :class:`~werk.server.EmbeddedServer` whose manual clock is
set to the recording's own wall-clock time (derived from the first INFO ``now``), and is
moved to each entry's recorded moment before the entry is replayed. So a FETCH that timed
out after 2 s, a scheduled job delivered on the scheduler's 5 s tick, a reservation
reaped at 60+ s and a worker dropped for a missing heartbeat all happen at the recorded
moments, without sleeping.

Replies are compared after normalising what differs from run to run: timestamps, the
INFO fields that measure the process (uptime, memory, version, task cycles and wall
time) and QUEUE LATENCY seconds. Password hashes are recomputed for werk's salt.

Documented exceptions (werk fixes the real server's bugs):

* 04: an explicit ``retry`` does not become the default of later jobs: jobs pushed
  without ``retry`` come back with 25.
* 15: MUTATE requeue visits a set in score order; Redis's scan order (which the
  recording reflects) is unspecified, so the two requeued S1 jobs come out swapped.
* 22: a bare ``PUSH`` gets ``-ERR internal error`` and the server stays up (1.9.4
  crashed).
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import replace
from typing import Any

from tests.server.rawclient import read_reply
from tests.servers import ServerFactory
from tests.transcripts import Entry, load

from werk._protocol.handshake import password_hash
from werk._protocol.resp import NEED_DATA, ErrorReply, ReplyReader
from werk._protocol.timefmt import to_epoch
from werk.server import EmbeddedServer, ManualClock

PASSWORD = "secret-pw"
READ_TIMEOUT = 5.0

_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:\d\d)")
_INFO_FIELDS = [
    (re.compile(rb'"server_utc_time":"[^"]*"'), b'"server_utc_time":"<T>"'),
    (re.compile(rb'"uptime":\d+'), b'"uptime":<N>'),
    (re.compile(rb'"used_memory_mb":\d+'), b'"used_memory_mb":<N>'),
    (re.compile(rb'"faktory_version":"[^"]*"'), b'"faktory_version":"<V>"'),
    (re.compile(rb'"cycles":\d+'), b'"cycles":<N>'),
    (re.compile(rb'"wall_time_sec":[0-9.e+-]+'), b'"wall_time_sec":<S>'),
]
_SECONDS = re.compile(rb'":(?!0[,}])[0-9.e+-]+')
_WEB_SIGNAL = re.compile(r"HTTP POST /busy wid=(\S+) signal=(quiet|terminate)")
_POLL = re.compile(r"t\+([0-9.]+)s since FETCH: sets=(\{.*?\}) Busy=(\{.*?\}) Workers=(\{.*?\})")


def normalise(reply: Any, last_command: bytes) -> Any:
    """The parts of a decoded reply that must be identical on every run."""
    if not isinstance(reply, bytes):
        return reply
    body = _TIME.sub(b"<TIME>", reply)
    for rx, repl in _INFO_FIELDS:
        body = rx.sub(repl, body)
    if last_command.startswith(b"QUEUE LATENCY"):
        body = _SECONDS.sub(b'":<SECONDS>', body)
    return body


def origin_of(entries: list[Entry]) -> float:
    """The recording's wall-clock time at elapsed 0."""
    for e in entries:
        if e.kind == "recv" and b'"now":"' in e.data:
            now = json.loads(e.data.split(b"\r\n", 1)[1])["now"]
            return float(to_epoch(now)) - e.elapsed
    header = entries[0].comment
    m = re.search(r"recorded (\S+)", header)
    assert m is not None, "no time reference in the recording"
    return float(to_epoch(m.group(1)))


# -- documented exceptions -------------------------------------------------------------


def _fixed_retry_default(entries: list[Entry]) -> list[Entry]:
    """Expect 25 for every job pushed without ``retry`` (werk fixes the leaking default)."""
    no_retry: set[str] = set()
    out = []
    for e in entries:
        if e.kind == "send" and e.data.startswith((b"PUSH ", b"PUSHB ")):
            try:
                payload = json.loads(e.data.split(b" ", 1)[1])
            except ValueError:
                payload = None
            jobs = payload if isinstance(payload, list) else [payload]
            for job in jobs:
                if isinstance(job, dict) and isinstance(job.get("jid"), str):
                    if job.get("retry") is None:
                        no_retry.add(job["jid"])
                    else:
                        no_retry.discard(job["jid"])
        if e.kind == "recv" and not e.abbreviated and e.data.startswith(b"$"):
            m = re.search(rb'^\$\d+\r\n\{"retry":(-?\d+),(.*?"jid":"([^"]*)")', e.data)
            if m and m.group(3).decode() in no_retry and m.group(1) != b"25":
                body = e.data.split(b"\r\n", 1)[1][:-2]
                body = b'{"retry":25,' + body[len(b'{"retry":') + len(m.group(1)) + 1 :]
                e = replace(e, data=b"$%d\r\n%s\r\n" % (len(body), body))
        out.append(e)
    return out


def _swap(entries: list[Entry], a: bytes, b: bytes) -> list[Entry]:
    ia = [i for i, e in enumerate(entries) if a in e.data and e.kind in ("send", "recv")]
    ib = [i for i, e in enumerate(entries) if b in e.data and e.kind in ("send", "recv")]
    out = list(entries)
    for i, j in zip(ia, ib, strict=True):
        out[i], out[j] = (
            replace(entries[i], data=entries[j].data),
            replace(entries[j], data=entries[i].data),
        )
    return out


def adjusted(name: str) -> list[Entry]:
    """The recording with werk's documented differences applied."""
    entries = _fixed_retry_default(load(name))
    if name.startswith("15_"):
        # Both requeued jobs, their FETCH replies and ACKs: werk gives S1a first.
        entries = _swap(entries, b'"jid":"jid-sched-S1b"', b'"jid":"jid-sched-S1a"')
    if name.startswith("22_"):
        out = []
        for e in entries:
            if e.kind == "eof" and e.conn == "c1":
                e = replace(e, kind="recv", data=b"-ERR internal error\r\n")
            out.append(e)
        entries = out
    return entries


# -- replay ----------------------------------------------------------------------------


class Peer:
    """One client socket with a reply reader."""

    def __init__(self, srv: EmbeddedServer) -> None:
        self.sock = socket.create_connection((srv.host, srv.port), timeout=READ_TIMEOUT)
        self.reader = ReplyReader()
        self.greeting: dict[str, Any] = {}
        self.last_command = b""
        self.sent = 0
        self.local = self.sock.getsockname()

    def send(self, data: bytes) -> None:
        lines = [line for line in data.split(b"\n") if line]
        if lines:
            self.last_command = lines[-1]
        try:
            self.sock.sendall(data)
            self.sent += len(data)
        except OSError:
            pass  # the server closed first: the next entry expects EOF

    def read(self) -> Any:
        return read_reply(self.sock, self.reader)

    def read_eof(self) -> None:
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        assert chunk == b"", f"expected the server to close, got {chunk!r}"


def _decode(data: bytes) -> Any:
    reader = ReplyReader()
    reader.feed(data)
    reply = reader.next_reply()
    assert reply is not NEED_DATA, f"incomplete recorded reply {data!r}"
    return reply


def _rewrite_hello(data: bytes, peer: Peer, recorded: dict[str, Any]) -> bytes:
    """Recompute a recorded pwdhash for werk's salt (keeping it as wrong as it was)."""
    if not data.startswith(b"HELLO {") or b"pwdhash" not in data or not peer.greeting:
        return data
    hello = json.loads(data[6:])
    sent = hello["pwdhash"]
    salt, iters = peer.greeting.get("s"), peer.greeting.get("i")
    if salt is None or not recorded:
        return data
    for n_recorded, n_ours in ((recorded["i"], iters), (1, 1)):
        good = password_hash(PASSWORD, recorded["s"], n_recorded)
        if sent in (good, good.upper()):
            ours = password_hash(PASSWORD, salt, n_ours)
            hello["pwdhash"] = ours if sent == good else ours.upper()
            return b"HELLO " + json.dumps(hello, separators=(",", ":")).encode() + b"\r\n"
    return data


def replay(name: str, make_server: ServerFactory) -> int:
    """Replay one scenario on a server from ``make_server``; raise AssertionError at the
    first differing reply.

    Returns the number of replies compared.
    """
    entries = adjusted(name)
    password = PASSWORD if "FAKTORY_PASSWORD=" in entries[0].comment else None
    origin = origin_of(entries)
    clock = ManualClock(origin)
    compared = 0
    peers: dict[str, Peer] = {}
    recorded_hi: dict[str, dict[str, Any]] = {}
    first_fetch: float | None = None
    # The recordings are of open-source Faktory: a scenario that sends BATCH or TRACK
    # (its "only available in Faktory Enterprise" replies) runs without werk's extensions.
    enterprise = any(
        e.kind == "send" and re.search(rb"(^|\n)(BATCH|TRACK)\b", e.data) for e in entries
    )
    srv = make_server(clock=clock, password=password, **({"extensions": []} if enterprise else {}))
    for idx, e in enumerate(entries):
        where = f"{name} entry {idx} [{e.elapsed:.3f}s] {e.conn} {e.kind} {e.data[:80]!r}"
        for poll in _POLL.finditer(e.comment):
            # 18: the recorder polled INFO on p1 every 5 s and kept only summaries.
            assert first_fetch is not None
            _sync(srv, peers)
            srv.set_time(origin + min(first_fetch + float(poll.group(1)), e.elapsed))
            p1 = peers["p1"]
            p1.send(b"INFO\r\n")
            info = json.loads(p1.read())["faktory"]
            assert info["sets"] == json.loads(poll.group(2)), where
            assert info["tasks"]["Busy"] == json.loads(poll.group(3)), where
            assert info["tasks"]["Workers"] == json.loads(poll.group(4)), where
            compared += 1
        _sync(srv, peers)
        srv.set_time(origin + e.elapsed)
        for wid, state in _WEB_SIGNAL.findall(e.comment):
            # 12: the recorder quieted workers from the Web UI's Busy page.
            srv.call(srv.manager.workers.signal, wid, state)
        if e.kind == "connect":
            peers[e.conn] = Peer(srv)
        elif e.kind == "send":
            peer = peers[e.conn]
            if first_fetch is None and e.data.startswith(b"FETCH"):
                first_fetch = e.elapsed
            peer.send(_rewrite_hello(e.data, peer, recorded_hi.get(e.conn, {})))
        elif e.kind == "recv":
            peer = peers[e.conn]
            actual = peer.read()
            if e.abbreviated:
                # 04's 1 MiB reply is recorded cut short: check its shape only.
                m = re.match(rb"\$(\d+)\r\n", e.data)
                assert m is not None and isinstance(actual, bytes), where
                assert abs(len(actual) - int(m.group(1))) < 40, where
                assert actual.startswith(e.data[m.end() :]), where
            else:
                expected = _decode(e.data)
                if isinstance(expected, str) and expected.startswith("HI "):
                    recorded_hi[e.conn] = json.loads(expected[3:])
                    assert isinstance(actual, str) and actual.startswith("HI "), where
                    peer.greeting = json.loads(actual[3:])
                    assert set(peer.greeting) == set(recorded_hi[e.conn]), where
                    if "i" in peer.greeting:
                        assert 4000 <= peer.greeting["i"] <= 8095, where
                else:
                    exp = normalise(expected, peer.last_command)
                    act = normalise(actual, peer.last_command)
                    assert act == exp, f"{where}\n expected {exp!r}\n      got {act!r}"
            compared += 1
        elif e.kind == "eof":
            try:
                peers[e.conn].read_eof()
            except OSError as exc:
                raise AssertionError(f"{where}: {exc!r}") from exc
            compared += 1
        elif e.kind == "close":
            peer = peers.pop(e.conn)
            local = peer.sock.getsockname()
            peer.sock.close()
            _wait_closed(srv, local)
    return compared


def _sync(srv: EmbeddedServer, peers: dict[str, Peer]) -> None:
    """Wait until the server has read every byte sent so far (so that a FETCH's 2 s
    deadline starts at the recorded moment, before the clock moves on)."""
    import time

    want = {tuple(p.local): p.sent for p in peers.values()}

    def lagging() -> bool:
        for c in srv.server.connections:
            peer = c.transport.get_extra_info("peername") if c.transport else None
            if peer is not None and want.get(tuple(peer), 0) > c.received and not c.closed:
                return True
        return False

    deadline = time.monotonic() + 10.0
    while srv.call(lagging):
        if time.monotonic() > deadline:
            raise AssertionError("the server did not read what was sent")
        time.sleep(0.001)


def _wait_closed(srv: EmbeddedServer, local: tuple[str, int]) -> None:
    """Wait until the server has noticed a client's close (as the recorder's pauses did)."""
    import time

    def open_peers() -> set[Any]:
        return {
            c.transport.get_extra_info("peername")
            for c in srv.server.connections
            if c.transport is not None
        }

    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if tuple(local) not in {tuple(p) for p in srv.call(open_peers) if p}:
            return
        time.sleep(0.002)
    raise AssertionError(f"server did not notice the close of {local}")


__all__ = ["ErrorReply", "adjusted", "normalise", "origin_of", "replay"]

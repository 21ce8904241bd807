"""Turn a recorded connection into client calls, the exact bytes they must send, and the
recorded reply each must get back.

Every command line the recorded client sent is paired with the reply the real server gave
(replies come in order, one per line, none for END). A line becomes a step only when a
werk client call produces exactly those bytes; lines no werk call can produce (malformed
commands, lowercase verbs, RESP arrays...) are left out together with their replies.

One deliberate difference: werk always sends ``retry`` (Faktory's default of 25 when the
caller gives none), because on a real server an explicit ``retry`` in one PUSH becomes the
default of later jobs that omit it. A recorded job without ``retry`` must therefore come out
as the recorded bytes plus exactly ``,"retry":25`` after its ``args``/``queue``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.client.peer import Close, Expect, ExpectEOF, ReadLine, Send, Step
from tests.transcripts import load

from werk import Mutation
from werk._protocol import command_lines as commands
from werk._protocol.command_lines import LineReader, split_command
from werk._protocol.handshake import hello_payload, parse_greeting
from werk._protocol.resp import ErrorReply, ReplyReader
from werk.client import _requests as requests
from werk.client._failure import fail_request

PASSWORD = "secret-pw"  # the recordings' FAKTORY_PASSWORD


@dataclass
class Call:
    """``method(*args, **kwargs)`` on a client, and what it must send and get."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    line: bytes
    reply: bytes

    @property
    def decoded(self) -> Any:
        reader = ReplyReader()
        reader.feed(self.reply)
        return reader.next_reply()


@dataclass
class Plan:
    name: str
    conn: str
    hello: dict[str, Any]
    greeting: bytes
    calls: list[Call]
    ends: bool  # the client said END

    def client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"hostname": self.hello.get("hostname") or "h"}
        if self.hello.get("wid"):
            kw["wid"] = self.hello["wid"]
            kw["labels"] = self.hello.get("labels") or ()
        if "pwdhash" in self.hello:
            kw["password"] = PASSWORD
        return kw

    def script(self) -> list[Step]:
        def same_hello(line: bytes) -> None:
            sent = json.loads(line[6:])
            assert sent == self.hello, (sent, self.hello)

        steps: list[Step] = [Send(self.greeting), ReadLine(same_hello), Send(b"+OK\r\n")]
        for call in self.calls:
            steps += [Expect(call.line), Send(call.reply)]
        steps += [Expect(b"END\r\n"), ExpectEOF()] if self.ends else [Close()]
        return steps


def _lines(data: bytes) -> list[bytes]:
    reader = LineReader()
    reader.feed(data)
    out: list[bytes] = []
    fed = len(data)
    while True:
        before = fed - reader.buffered
        line = reader.next_line()
        if line is None:
            return out
        used = (fed - reader.buffered) - before
        out.append(line + (b"\r\n" if used - len(line) == 2 else b"\n"))


def _retry_added(sent: bytes, recorded: bytes, jobs: list[Any]) -> bool:
    """``sent`` is ``recorded`` with ``,"retry":25`` added to each job that had no retry."""
    added = sum(1 for job in jobs if "retry" not in job)
    return added > 0 and sent.replace(b',"retry":25', b"", added) == recorded


Derived = tuple[str, tuple[Any, ...], dict[str, Any], bytes]
_PUSH_OPTIONS = ("jid", "queue", "retry", "reserve_for", "at", "backtrace", "custom")


def _derive(line: bytes, wid: str | None) -> Derived | None:
    """The client call that sends ``line`` (and the bytes it sends), or None."""
    if not line.endswith(b"\r\n"):
        return None
    verb, arg = split_command(line[:-2])
    try:
        text = arg.decode("utf-8") if arg is not None else None
        if verb in (b"INFO", b"FLUSH") and arg is None:
            return verb.decode().lower(), (), {}, line
        if text is None:
            return None
        if verb == b"PUSH":
            job = json.loads(text)
            opts = {k: v for k, v in job.items() if k not in ("jobtype", "args")}
            args = tuple(job["args"])
            sent = requests.push(job["jobtype"], args, *map(opts.get, _PUSH_OPTIONS)).line
            if sent == line or _retry_added(sent, line, [job]):
                return "push", (job["jobtype"], *args), opts, sent
        elif verb == b"PUSHB":
            jobs = json.loads(text)
            chunks = requests.BulkPush(jobs).chunks
            if len(chunks) == 1 and (
                chunks[0][1] == line or _retry_added(chunks[0][1], line, jobs)
            ):
                return "push_bulk", (jobs,), {}, chunks[0][1]
        elif verb == b"FETCH":
            queues = tuple(text.split(" "))
            if requests.fetch(queues).line == line:
                return "fetch", queues, {}, line
        elif verb == b"ACK":
            jid = json.loads(text)["jid"]
            if commands.ack(jid) == line:
                return "ack", (jid,), {}, line
        elif verb == b"FAIL":
            d = json.loads(text)
            kw = {"errtype": d.get("errtype"), "backtrace": d.get("backtrace")}
            if fail_request(d["jid"], d.get("message", ""), **kw).line == line:
                return "fail", (d["jid"], d.get("message", "")), kw, line
        elif verb == b"BEAT":
            d = json.loads(text)
            state, rss = d.get("current_state"), d.get("rss_kb")
            if d.get("wid") == wid and requests.beat(wid, state, rss).line == line:
                return "beat", (state, rss), {}, line
        elif verb == b"MUTATE":
            d = json.loads(text)
            flt = d.get("filter") or {}
            m = Mutation(
                d["cmd"],
                d["target"],
                jids=tuple(flt.get("jids") or ()),
                jobtype=flt.get("jobtype"),
                pattern=flt.get("regexp"),
            )
            if requests.mutate(m).line == line:
                return "mutate", (m,), {}, line
        elif verb == b"QUEUE":
            sub, *names = text.split(" ")
            method = {
                "PAUSE": "queue_pause",
                "RESUME": "queue_resume",
                "REMOVE": "queue_remove",
                "LATENCY": "queue_latency",
            }.get(sub)
            build = (
                (lambda n: requests.latency_of(n).line)
                if sub == "LATENCY"
                else (lambda n: commands.queue(sub, n))
            )
            if method and build(names) == line:
                return method, tuple(names), {}, line
        elif verb in (b"TRACK", b"BATCH"):
            sub, _, rest = text.partition(" ")
            method = f"{verb.decode().lower()}_{sub.lower()}"
            if sub in ("GET", "OPEN", "COMMIT", "STATUS") and rest and " " not in rest:
                builder: Callable[[str], bytes] = getattr(commands, method)
                if builder(rest) == line:
                    return method, (rest,), {}, line
    except Exception:  # a line no valid call produces
        return None
    return None


def plan(name: str, conn: str) -> Plan | None:
    """The replayable part of one recorded connection (None when its HELLO is not ours)."""
    entries = [e for e in load(name) if e.conn == conn]
    recv = [e for e in entries if e.kind == "recv"]
    if not recv or not recv[0].data.startswith(b"+HI "):
        return None
    greeting = recv[0].data
    lines = _lines(b"".join(e.data for e in entries if e.kind == "send"))
    if not lines or not lines[0].startswith(b"HELLO {") or len(recv) < 2:
        return None
    hello = json.loads(lines[0][6:])
    reader = ReplyReader()
    reader.feed(greeting)
    hi = parse_greeting(reader.next_reply())
    wid = hello.get("wid")
    try:
        ours = hello_payload(
            hi,
            password=PASSWORD,
            wid=wid,
            hostname=hello.get("hostname"),
            pid=hello.get("pid"),
            labels=hello.get("labels") or (),
        )
    except Exception:
        return None
    if ours != hello or recv[1].data != b"+OK\r\n" or "pid" not in hello:
        return None
    calls: list[Call] = []
    replies = recv[2:]
    ends = False
    for line in lines[1:]:
        if split_command(line.rstrip(b"\r\n"))[0] == b"END":
            ends = line == b"END\r\n"
            break
        if not replies:
            break  # the server closed (or crashed) without answering
        reply = replies.pop(0)
        if reply.abbreviated:
            break
        derived = _derive(line, wid)
        if derived is not None:
            calls.append(Call(*derived, reply.data))
    return Plan(name, conn, hello, greeting, calls, ends)


def check_outcome(call: Call, value: Any, error: BaseException | None) -> None:
    """The client's result matches the recorded reply."""
    decoded = call.decoded
    if isinstance(decoded, ErrorReply):
        assert error is not None, f"{call.method}: expected {decoded}, got {value!r}"
        assert (getattr(error, "code", None), getattr(error, "message", None)) == (
            decoded.code,
            decoded.message,
        ), error
        return
    assert error is None, f"{call.method}{call.args}: {error!r}"
    if call.method == "push":
        assert value == json.loads(call.line[5:])["jid"]
    elif call.method == "fetch":
        if decoded is None:
            assert value is None
        else:
            assert value.jid == json.loads(decoded)["jid"]
            assert value.args == json.loads(decoded)["args"]
    elif call.method in ("info", "push_bulk", "queue_latency"):
        assert value == json.loads(decoded)
    elif call.method == "beat":
        assert value == (None if decoded == "OK" else json.loads(decoded)["state"])
    else:
        assert value is None

"""The dispatcher: one command line in, one reply out, with the real server's texts.

:func:`dispatch` is sans-I/O: it gets a line (already split off the byte stream by
:class:`~werk._protocol.command_lines.LineReader`) and the connection's :class:`ClientState`,
calls the :class:`~werk.server._manager.Manager`, and returns the reply bytes, :data:`CLOSE`
(END), a :class:`FetchWait` when a FETCH has to block, or a
:class:`~werk.server._sweep.Sweep` for a MUTATE the connection carries out in slices.
Nothing a client sends raises out of here: an unexpected exception becomes
``-ERR internal error``. Server extensions may answer verbs of their own (BATCH and TRACK
replace the "only available in Faktory Enterprise" replies); the protocol's verbs are
looked up first.

Example::

    >>> from werk.server._clock import ManualClock
    >>> from werk.server._storage import MemoryStorage
    >>> from werk.server._manager import Manager
    >>> from werk.server._periodic import PeriodicTasks
    >>> m = Manager(MemoryStorage(), ManualClock(0))
    >>> s = ClientState(m, ServerStats(0.0), PeriodicTasks(m))
    >>> dispatch(s, b'PUSH {"jid":"jid-00000001","jobtype":"T","args":[]}')
    b'+OK\\r\\n'
    >>> dispatch(s, b"FETCH default")[:20]
    b'$148\\r\\n{"retry":25,"j'
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from werk._protocol.command_lines import split_command
from werk._protocol.resp import ENTERPRISE_ONLY, OK, UNKNOWN_WORKER, encode_bulk, encode_error
from werk.server import _admin as admin
from werk.server._arguments import (
    CommandArgumentError,
    MutateCommand,
    parse_ack,
    parse_beat,
    parse_fail,
)
from werk.server._extension import CommandHandler, KnownError
from werk.server._gojson import GoJSONError, go_bytes, go_float
from werk.server._info_reply import info_json
from werk.server._manager import Manager
from werk.server._periodic import PeriodicTasks
from werk.server._sets import Reservation
from werk.server._sweep import MutateError, Sweep

__all__ = [
    "CLOSE",
    "INTERNAL_ERROR",
    "ClientState",
    "FetchWait",
    "Reply",
    "ServerStats",
    "dispatch",
]

log = logging.getLogger("werk.server")


class _Close:
    __repr__ = lambda self: "CLOSE"  # noqa: E731


CLOSE: Final = _Close()
INTERNAL_ERROR: Final = b"-ERR internal error\r\n"


class FetchWait:
    """A FETCH that must wait: for a job on ``queues``, or (empty) just for the timeout."""

    __slots__ = ("queues",)

    def __init__(self, queues: list[str]) -> None:
        self.queues = queues


class ServerStats:
    """Counters INFO reports about the server itself."""

    __slots__ = ("connections", "started", "verbs")

    def __init__(self, started: float) -> None:
        self.started = started
        self.connections = 0
        # Commands run, by verb: the protocol's verbs from the start, so that counting one
        # is an item increment; an extension's verbs join when first used. Unknown verbs
        # are not counted (a client cannot add names).
        self.verbs: dict[bytes, int] = dict.fromkeys((*_WITH_ARG, *_OPTIONAL_ARG, *_WHOLE_LINE), 0)

    @property
    def commands(self) -> int:
        """Commands run (of known verbs), as INFO's ``command_count``."""
        return sum(self.verbs.values())


class ClientState:
    """What a command needs to know about its connection.

    ``fetched`` is the reservation whose job the last reply carries (a FETCH that found
    one): the connection takes it, so that a reply it cannot deliver puts the job back.
    """

    __slots__ = ("fetched", "manager", "stats", "tasks", "wid")

    def __init__(
        self, manager: Manager, stats: ServerStats, tasks: PeriodicTasks, wid: str = ""
    ) -> None:
        self.manager = manager
        self.stats = stats
        self.tasks = tasks
        self.wid = wid
        self.fetched: Reservation | None = None


Reply = bytes | _Close | FetchWait | Sweep


def _push(s: ClientState, arg: bytes) -> Reply:
    error = s.manager.push_bytes(arg)
    if error is None:
        return OK
    if isinstance(error, KnownError):  # -NOTUNIQUE Job not unique
        return encode_error(error.message, error.code)
    return encode_error(error)


def _pushb(s: ClientState, arg: bytes) -> Reply:
    try:
        return encode_bulk(s.manager.push_bulk_bytes(arg))
    except GoJSONError as exc:
        return encode_error(f"invalid JSON: {exc}")


def _fetch(s: ClientState, arg: bytes | None) -> Reply:
    m = s.manager
    if s.wid and m.workers.is_quiet(s.wid):
        return FetchWait([])
    if arg is None:
        return encode_error("must call fetch with at least one queue")
    queues = arg.decode("utf-8", "replace").split(" ")
    res = m.fetch(queues, s.wid)  # skips paused queues itself
    if res is None:
        # Wait on the unpaused ones; none left means waiting just for the timeout.
        return FetchWait(m.active_queues(queues))
    s.fetched = res
    return encode_bulk(res.payload)


# ACK, FAIL and BEAT raise CommandArgumentError on a bad argument: dispatch() answers it.


def _ack(s: ClientState, arg: bytes) -> Reply:
    m = s.manager
    m.ack(parse_ack(m.codec, arg))
    return OK


def _fail(s: ClientState, arg: bytes) -> Reply:
    m = s.manager
    payload = parse_fail(m.codec, arg)
    error = m.fail(
        payload.get("jid") or "",
        payload.get("errtype") or "",
        payload.get("message") or "",
        payload.get("backtrace"),
    )
    return OK if error is None else encode_error(error)


_STATES = {
    "quiet": encode_bulk(b'{"state":"quiet"}'),
    "terminate": encode_bulk(b'{"state":"terminate"}'),
}


def _beat(s: ClientState, arg: bytes) -> Reply:
    m = s.manager
    beat = parse_beat(m.codec, arg)
    wid = beat.get("wid") or ""
    worker = m.workers.heartbeat(
        wid, beat.get("current_state") or "", beat.get("rss_kb") or 0, now=m.clock.now()
    )
    if worker is None:
        return encode_error(f"{UNKNOWN_WORKER} {wid}")
    return _STATES.get(worker.state, OK)


def _info(s: ClientState, arg: bytes | None) -> Reply:
    st = s.stats
    return encode_bulk(
        info_json(
            s.manager,
            s.tasks.stats(),
            started=st.started,
            connections=st.connections,
            commands=st.commands,
        )
    )


def _flush(s: ClientState, arg: bytes | None) -> Reply:
    admin.flush(s.manager)
    return OK


def _end(s: ClientState, arg: bytes | None) -> Reply:
    return CLOSE


def _mutate(s: ClientState, line: bytes) -> Reply:
    parts = line.split(b" ")
    if len(parts) != 2:
        return encode_error("invalid format")
    m = s.manager
    try:
        sweep = Sweep(m, MutateCommand.decode(m.codec, parts[1]))
    except (GoJSONError, MutateError) as exc:
        return encode_error(str(exc))
    # The connection steps the sweep between other clients' commands, then replies.
    return OK if sweep.done else sweep


def _queue(s: ClientState, line: bytes) -> Reply:
    tokens = line.decode("utf-8", "replace").split(" ")[1:]
    if not tokens:
        return INTERNAL_ERROR  # bare QUEUE: 1.10.0's recovered panic
    sub = tokens[0].upper()
    names = tokens[1:]
    m = s.manager
    if sub == "LATENCY":
        if len(names) == 1 and names[0] == "*":
            return encode_error("QUEUE LATENCY does not support wildcards")
        try:
            latencies = admin.latency(m, names)
        except (GoJSONError, ValueError, AttributeError) as exc:
            return encode_error(f"QUEUE: {exc}")
        body = ",".join(
            f"{_json_str(k)}:{go_float(v) if v else '0'}" for k, v in sorted(latencies.items())
        )
        return encode_bulk(go_bytes("{" + body + "}"))
    op = _QUEUE_OPS.get(sub)
    if op is None:
        return encode_error(f"no such QUEUE subcommand: {sub}")
    if not names:
        return INTERNAL_ERROR  # QUEUE PAUSE with no name: 1.10.0's recovered panic
    targets = list(m.queues) if names[0] == "*" else names
    for name in targets:
        op(m, name)
    return OK


_QUEUE_OPS: dict[str, Callable[[Manager, str], None]] = {
    "PAUSE": admin.pause,
    "RESUME": admin.resume,
    "REMOVE": admin.remove_queue,
}


def _json_str(text: str) -> str:
    from json.encoder import encode_basestring

    return str(encode_basestring(text))


def _enterprise_only(reply: bytes) -> CommandHandler:
    return lambda arg, client: reply


# What BATCH and TRACK answer unless an extension takes them.
_ENTERPRISE: dict[bytes, CommandHandler] = {
    b"BATCH": _enterprise_only(encode_error(f"batch subsystem is {ENTERPRISE_ONLY}")),
    b"TRACK": _enterprise_only(encode_error(f"tracking subsystem is {ENTERPRISE_ONLY}")),
}


# Verbs whose argument is required: a bare verb is "-ERR internal error" (1.10.0), never a crash.
_WITH_ARG: dict[bytes, Callable[[ClientState, bytes], Reply]] = {
    b"PUSH": _push,
    b"PUSHB": _pushb,
    b"ACK": _ack,
    b"FAIL": _fail,
    b"BEAT": _beat,
}
_OPTIONAL_ARG: dict[bytes, Callable[[ClientState, bytes | None], Reply]] = {
    b"FETCH": _fetch,
    b"INFO": _info,
    b"FLUSH": _flush,
    b"END": _end,
}
_WHOLE_LINE: dict[bytes, Callable[[ClientState, bytes], Reply]] = {
    b"MUTATE": _mutate,
    b"QUEUE": _queue,
}


def dispatch(state: ClientState, line: bytes) -> Reply:
    """Run one command line (after the handshake) and return its reply."""
    verb, arg = split_command(line)
    try:
        handler = _WITH_ARG.get(verb)
        if handler is not None:
            state.stats.verbs[verb] += 1
            if arg is None:
                return INTERNAL_ERROR
            return handler(state, arg)
        optional = _OPTIONAL_ARG.get(verb)
        if optional is not None:
            state.stats.verbs[verb] += 1
            return optional(state, arg)
        whole = _WHOLE_LINE.get(verb)
        if whole is not None:
            state.stats.verbs[verb] += 1
            return whole(state, line)
        hooks = state.manager.hooks
        command = (hooks.commands.get(verb) if hooks else None) or _ENTERPRISE.get(verb)
        if command is not None:
            verbs = state.stats.verbs
            verbs[verb] = verbs.get(verb, 0) + 1
            return command(arg, state)
    except CommandArgumentError:
        # Go's text echoes the whole line: "invalid ACK <arg>".
        return encode_error(b"invalid " + line)
    except Exception:
        log.exception("internal error handling %r", line[:200])
        return INTERNAL_ERROR
    return encode_error(b"unknown command " + verb)

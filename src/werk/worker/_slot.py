"""A fetch slot's decisions as pure code: events in, actions out (in the manner of h11).

Every executor runs the same slot: it asks :class:`Slot` what to do, does it its own way
(blocking calls on a thread, awaits on an event loop, a child process for the handler) and
tells the slot what happened::

    action = slot.next()
    Send(lines, blocking)  ->  write the lines at once, read a reply each  ->  slot.replied(replies)
                                                          (or the write failed) slot.failed(exc)
    a JobRun               ->  with run: call the handler                  ->  slot.ran(run)
    Pause(seconds)         ->  wait that long, or until the stop           ->  slot.next()
    STOP                   ->  the slot is done

The slot decides what goes out (a job's ACK or FAIL in the same write as the next FETCH),
which reports are owed and sent again (the server could not store them, or the connection
broke before their reply), how long to back off, when a job fetched after the hard stop is
given back, when to stop, and what an error means: a wrong password ends the worker, a
lost connection is an outage (reconnect with back-off), a refused FETCH or an unexpected
error is logged and retried. The worker-wide consequences go to its :class:`SlotHost`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from werk._errors import AuthenticationError, JobNotFoundError, ServerError
from werk._protocol import command_lines
from werk._protocol.replies import fetched_payload
from werk._protocol.resp import ErrorReply, Reply
from werk._protocol.session import closed_after, closes_connection
from werk.worker._backoff import Backoff, reconnectable
from werk.worker._host import SlotHost, StopSignal
from werk.worker._run import JobRun

__all__ = ["STOP", "Action", "Pause", "Send", "Slot", "report_owed"]

log = logging.getLogger("werk.worker")


class Send(NamedTuple):
    """Write ``lines`` in one go (the reports first, then maybe a FETCH); read a reply to
    each. ``blocking``: a FETCH is among them (the server may hold it about 2 s)."""

    lines: list[bytes]
    blocking: bool


class Pause(NamedTuple):
    """Wait ``seconds`` (back-off), or less if the stop comes; then :meth:`Slot.next`."""

    seconds: float


class _Stop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "STOP"


STOP = _Stop()
"""The slot is done: close its connection."""

Action = Send | JobRun | Pause | _Stop
"""What a slot does next; a :class:`~werk.worker._run.JobRun` means: call its handler
inside ``with run:``, then :meth:`Slot.ran`."""

_new_tuple = tuple.__new__


def report_owed(error: ServerError) -> bool:
    """True when the server refused an ACK/FAIL because it could not store it (a full disk,
    a failing database): the report is still owed and must be sent again.

    False when the server does not hold the job (``Job not found``: already reported, or its
    reservation expired) or found the report malformed: sending it again cannot help.
    """
    if isinstance(error, JobNotFoundError):
        return False
    message = error.message.lower()
    return not message.startswith("invalid") and not message.startswith("missing")


def _jid(report: bytes) -> str:
    return report.split(b'"jid":"', 1)[-1].split(b'"', 1)[0].decode("utf-8", "replace")


def _refused(error: ServerError, report: bytes, maybe_applied: bool) -> None:
    jid = _jid(report)
    if not isinstance(error, JobNotFoundError):
        log.error("server refused the report for jid=%s: %s", jid, error)
    elif maybe_applied:
        # An earlier attempt went through before the connection broke.
        log.debug("report for jid=%s was already applied", jid)
    else:
        log.warning(
            "server no longer holds jid=%s (its reservation expired?): %s; it may run again",
            jid,
            error,
        )


def _give_back(payload: dict[str, Any]) -> bytes:
    jid = payload["jid"]
    log.warning(
        "giving back jid=%s jobtype=%s: fetched after the shutdown deadline",
        jid,
        payload.get("jobtype"),
        extra={"jid": jid, "jobtype": payload.get("jobtype")},
    )
    return command_lines.fail(jid, "Shutdown", "worker stopped before the job could start")


class Slot:
    """One fetch slot of a worker, as a state machine (no I/O, no threads, no clock).

    ``reports`` are ACK/FAIL lines owed from the start (the shutdown's last reports);
    ``stop`` defaults to the host's hard stop; ``backoff`` to 0.1 s doubling up to 10 s.
    ``in_io`` is True between a :class:`Send` and its outcome.
    """

    __slots__ = (
        "_backoff",
        "_fetching",
        "_host",
        "_maybe_applied",
        "_reports",
        "_sent",
        "in_io",
        "stop",
    )

    def __init__(
        self,
        host: SlotHost,
        *,
        reports: Iterable[bytes] = (),
        stop: StopSignal | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._host = host
        self.stop: StopSignal = host.hard_stop if stop is None else stop
        self._backoff = Backoff() if backoff is None else backoff
        self._reports: list[bytes] = list(reports)
        self._sent = 0  # how many of _reports the write in flight carries
        self._fetching = False  # the write in flight ends with a FETCH
        self._maybe_applied: set[bytes] = set()  # sent when a connection broke
        self.in_io = False

    def __repr__(self) -> str:
        return f"<Slot {len(self._reports)} reports owed{', in I/O' if self.in_io else ''}>"

    @property
    def reports(self) -> tuple[bytes, ...]:
        """The ACK/FAIL lines not yet confirmed by the server, oldest first."""
        return tuple(self._reports)

    # -- events -----------------------------------------------------------------------------

    def next(self) -> Action:
        """What to do now: at the start, after a pause, after a job."""
        if self.stop.is_set():
            return self._give_up()
        host = self._host
        reports = self._reports
        if host.fetching:  # (the _send of the hot path, inline)
            self._sent = len(reports)
            self._fetching = self.in_io = True
            return _new_tuple(Send, ([*reports, host.fetch_line()], True))
        if reports:
            return self._send(reports.copy(), False)
        self.in_io = False
        return STOP

    def replied(self, replies: Sequence[Reply]) -> Action:
        """The replies to the last :class:`Send`, in order (error replies as values).

        The slot stays ``in_io`` when the answer is another write (a job given back at the
        hard stop, an unknown job's FAIL): whoever watches never sees it idle in between.
        """
        for reply in replies:
            if type(reply) is ErrorReply and closes_connection(reply):
                # The server hangs up after it: as a lost connection (reports sent again).
                return self.failed(closed_after(self._host.where, reply))
        reports = self._reports
        sent = self._sent
        if sent == 1 and type(replies[0]) is not ErrorReply and not self._maybe_applied:
            del reports[0]  # the usual case: one ACK, confirmed
        elif sent:
            self._settle(replies)
        payload = None
        if self._fetching:
            try:
                payload = fetched_payload(replies[-1])
            except Exception as exc:  # a refused FETCH, or a reply that is not a job
                self._triage(exc)
                return self._pause()
        self._host.connection_ok()
        backoff = self._backoff
        if reports:
            if payload is None:
                return self._pause()  # owed: send again, later
        elif backoff.attempts:
            backoff.reset()
        if payload is None:
            return self.next()
        if self.stop.is_set():
            # Fetched in the last moments: give it straight back, in one last write.
            reports.append(_give_back(payload))
            return self._send(reports.copy(), False)
        try:
            run = self._host.begin(payload)
        except Exception as exc:  # not a job werk can read (a missing jobtype...)
            jid = payload["jid"]
            log.error("cannot run jid=%s: %r", jid, exc)
            reports.append(command_lines.fail(jid, "InvalidJob", f"{type(exc).__name__}: {exc}"))
            return self.next()
        if run.error is not None:  # an unknown job type: FAILed without running
            return self.ran(run)
        self.in_io = False
        return run

    def failed(self, exc: BaseException) -> Action:
        """The last :class:`Send` failed: the connection broke, or worse. Its reports are
        sent again (their fate is unknown; the server ignores a second one)."""
        if self._sent:
            self._maybe_applied.update(self._reports[: self._sent])
        self._triage(exc)
        return self._pause()

    def ran(self, run: JobRun) -> Action:
        """The run is over (``run.error`` says how it went)."""
        report = self._host.finish(run)
        if report is not None:
            self._reports.append(report)
        return self.next()

    # -- decisions --------------------------------------------------------------------------

    def _send(self, lines: list[bytes], fetching: bool) -> Send:
        self._sent = len(self._reports)
        self._fetching = fetching
        self.in_io = True
        return _new_tuple(Send, (lines, fetching))  # Send(...) without its Python __new__

    def _pause(self) -> Pause:
        self.in_io = False
        return Pause(self._backoff.next_delay())

    def _settle(self, replies: Sequence[Reply]) -> None:
        reports = self._reports
        sent = self._sent
        owed: list[bytes] = []
        maybe_applied = self._maybe_applied
        for line, reply in zip(reports[:sent], replies, strict=False):
            if type(reply) is not ErrorReply:
                if maybe_applied:
                    maybe_applied.discard(line)
                continue
            error = reply.to_exception()
            if report_owed(error):
                log.warning(
                    "the server could not store %s: %s; sending it again",
                    line.split(b" ", 1)[0].decode("ascii", "replace"),
                    error,
                )
                owed.append(line)
                continue
            _refused(error, line, line in maybe_applied)
            maybe_applied.discard(line)
        del reports[:sent]
        if owed:
            reports[:0] = owed

    def _triage(self, exc: BaseException) -> None:
        host = self._host
        if isinstance(exc, AuthenticationError):
            host.fatal(exc)
        elif reconnectable(exc):
            host.connection_failed(exc)
        elif isinstance(exc, ServerError):
            log.error("FETCH refused: %s", exc)
        else:
            log.error("unexpected error in a fetch slot: %r", exc, exc_info=exc)

    def _give_up(self) -> Action:
        for line in self._reports:
            self._host.lost_report(line)
        self._reports.clear()
        self.in_io = False
        return STOP

"""The slot machine with plain data: replies in, actions out (no sockets, no threads).

Every executor runs this one :class:`Slot`; here each event is fed by hand, as the server's
``dispatch`` is tested with command lines. The host is plain data that records what the
slot told the worker; jobs run through a real ledger (pure bookkeeping).
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

import werk
from werk._errors import AuthenticationError, ConnectionClosedError, NetworkTimeout
from werk._protocol.resp import ErrorReply, Reply
from werk.client import AsyncClient, Client
from werk.worker._backoff import Backoff, Deadline
from werk.worker._ledger import Ledger
from werk.worker._run import JobRun
from werk.worker._slot import STOP, Action, Pause, Send, Slot

FETCH = b"FETCH default\r\n"
DISK_FULL = ErrorReply("ERR", "[Errno 28] No space left on device")


def job(jid: str, jobtype: str = "noop", *args: Any) -> bytes:
    """FETCH's reply carrying a job, as the client hands it over (a bulk string)."""
    payload = {"jid": jid, "jobtype": jobtype, "args": list(args), "queue": "default"}
    return json.dumps(payload).encode()


def ack(jid: str) -> bytes:
    return b'ACK {"jid":"' + jid.encode() + b'"}\r\n'


@dataclass
class Host:
    """A SlotHost of plain data: it records what the slot told the worker."""

    fetching: bool = True
    concurrency: int = 1
    where: str = "tcp://faktory:7419"
    hard_stop: threading.Event = field(default_factory=threading.Event)
    told: list[tuple[str, Any]] = field(default_factory=list)
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        app = werk.App()

        @app.job
        def noop() -> None: ...

        @app.job
        def other() -> None: ...

        self.ledger = Ledger(app.jobs, app.hooks, wid="w1")

    def fetch_line(self) -> bytes:
        return FETCH

    def begin(self, payload: dict[str, Any]) -> JobRun:
        return self.ledger.begin(payload)

    def finish(self, run: JobRun) -> bytes | None:
        return self.ledger.finish(run)

    def new_client(self) -> Client:
        raise AssertionError("a slot makes no connections")

    def new_async_client(self) -> AsyncClient:
        raise AssertionError("a slot makes no connections")

    def connection_failed(self, exc: BaseException) -> None:
        self.told.append(("outage", exc))

    def connection_ok(self) -> None:
        self.told.append(("ok", None))

    def fatal(self, exc: BaseException) -> None:
        self.told.append(("fatal", exc))

    def lost_report(self, line: bytes) -> None:
        self.told.append(("lost", line))

    def slots_exited(self) -> None:
        self.told.append(("exited", None))

    def events(self) -> list[str]:
        return [what for what, _ in self.told if what != "ok"]


def slot_for(host: Host, **kw: Any) -> Slot:
    return Slot(host, backoff=Backoff(base=0.1, cap=1.0, rng=random.Random(7)), **kw)


def slot_owing_an_ack(host: Host) -> Slot:
    """A slot that fetched jid-1 and ran it: its ACK is the report it now sends."""
    slot = slot_for(host)
    slot.next()
    slot.ran(run_it(slot.replied([job("jid-1")])))
    return slot


def run_it(action: Action, error: BaseException | None = None) -> JobRun:
    """What an executor does with a run: the handler call inside ``with run:``."""
    assert type(action) is JobRun
    with action:
        if error is not None:
            raise error
    return action


def test_the_ack_goes_out_with_the_next_fetch() -> None:
    host = Host()
    slot = slot_for(host)
    assert slot.next() == Send([FETCH], True)
    assert slot.in_io
    action = slot.replied([job("jid-1")])
    assert not slot.in_io
    run = run_it(action)
    assert (run.job.jid, run.error) == ("jid-1", None)
    assert slot.ran(run) == Send([ack("jid-1"), FETCH], True)
    assert slot.replied(["OK", None]) == Send([FETCH], True)  # nothing fetched: at once again
    assert host.ledger.processed == 1 and not host.ledger.inflight
    assert host.events() == []


def test_a_failed_job_sends_its_fail_with_the_next_fetch() -> None:
    host = Host()
    slot = slot_for(host)
    slot.next()
    run = run_it(slot.replied([job("jid-1")]), ValueError("bad input"))
    action = slot.ran(run)
    assert type(action) is Send and action.blocking
    fail, fetch = action.lines
    assert fetch == FETCH
    assert fail.startswith(b"FAIL ")
    payload = json.loads(fail[5:])
    assert (payload["jid"], payload["errtype"], payload["message"]) == (
        "jid-1",
        "ValueError",
        "bad input",
    )
    assert payload["backtrace"] and "test_worker_slot.py" in payload["backtrace"][0]
    assert host.ledger.failed == 1


def test_an_unknown_job_type_is_failed_without_running() -> None:
    host = Host()
    slot = slot_for(host)
    slot.next()
    action = slot.replied([job("jid-x", "NoSuchJob")])
    assert type(action) is Send  # no run: the FAIL goes straight out with the next FETCH
    assert slot.in_io
    payload = json.loads(action.lines[0][5:])
    assert payload["errtype"] == "UnknownJobType"
    assert payload["message"] == (
        "no handler registered for job type 'NoSuchJob' (known: noop, other)"
    )


def test_a_payload_that_is_not_a_job_is_failed_and_the_slot_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = Host()
    slot = slot_for(host)
    slot.next()
    with caplog.at_level(logging.ERROR, logger="werk.worker"):
        action = slot.replied([b'{"jid":"jid-odd","args":[]}'])  # no jobtype
    assert type(action) is Send and action.lines[-1] == FETCH
    payload = json.loads(action.lines[0][5:])
    assert (payload["jid"], payload["errtype"]) == ("jid-odd", "InvalidJob")
    assert "cannot run jid=jid-odd" in caplog.text


def test_a_quiet_slot_sends_its_last_report_alone_then_stops() -> None:
    host = Host()
    slot = slot_for(host)
    slot.next()
    run = run_it(slot.replied([job("jid-1")]))
    host.fetching = False  # the worker went quiet while the job ran
    assert slot.ran(run) == Send([ack("jid-1")], False)
    assert slot.replied(["OK"]) is STOP
    assert not slot.in_io


def test_a_quiet_slot_with_nothing_to_report_stops_at_once() -> None:
    assert slot_for(Host(fetching=False)).next() is STOP


def test_a_lost_connection_backs_off_and_sends_the_report_again() -> None:
    host = Host()
    slot = slot_owing_an_ack(host)
    delays = []
    for _ in range(4):
        action = slot.failed(NetworkTimeout("no answer"))
        assert type(action) is Pause and not slot.in_io
        delays.append(action.seconds)
        assert slot.next() == Send([ack("jid-1"), FETCH], True)  # the ACK again, with a FETCH
    assert delays == sorted(delays) and 0.05 <= delays[0] <= 0.1 and delays[-1] <= 0.8
    assert host.events() == ["outage"] * 4  # the host logs an outage once, not the slot
    assert slot.replied(["OK", None]) == Send([FETCH], True)
    assert host.told[-1] == ("ok", None)  # the outage is over
    action = slot.failed(NetworkTimeout("again"))
    assert type(action) is Pause and action.seconds <= 0.1  # back-off starts over


def test_a_report_found_applied_after_a_lost_connection_is_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = Host()
    slot = slot_owing_an_ack(host)
    slot.failed(ConnectionClosedError("reset"))  # the ACK may have gone through
    slot.next()
    with caplog.at_level(logging.DEBUG, logger="werk.worker"):
        action = slot.replied([ErrorReply("ERR", "Job not found jid-1"), None])
    assert action == Send([FETCH], True)
    assert [r.levelname for r in caplog.records] == ["DEBUG"]
    assert "already applied" in caplog.text


def test_a_report_the_server_no_longer_holds_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = Host()
    slot = slot_owing_an_ack(host)
    with caplog.at_level(logging.WARNING, logger="werk.worker"):
        action = slot.replied([ErrorReply("ERR", "Job not found jid-1"), None])
    assert action == Send([FETCH], True)
    assert "no longer holds jid=jid-1" in caplog.text
    assert slot.reports == ()


def test_a_report_the_server_could_not_store_is_owed_until_it_can(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = Host()
    slot = slot_owing_an_ack(host)
    with caplog.at_level(logging.WARNING, logger="werk.worker"):
        first = slot.replied([DISK_FULL, None])
        assert type(first) is Pause  # nothing fetched: wait before sending it again
        assert slot.next() == Send([ack("jid-1"), FETCH], True)
        second = slot.replied([DISK_FULL, None])
    assert type(second) is Pause and second.seconds > first.seconds / 2
    assert "could not store ACK" in caplog.text and "Errno 28" in caplog.text
    assert slot.reports == (ack("jid-1"),)
    slot.next()
    assert slot.replied(["OK", None]) == Send([FETCH], True)
    assert slot.reports == ()


def test_an_owed_report_rides_along_when_a_job_was_fetched() -> None:
    host = Host()
    slot = slot_owing_an_ack(host)
    action = slot.replied([DISK_FULL, job("jid-2")])  # the ACK refused, yet a job came
    run = run_it(action)
    # The owed ACK goes out again, first, with the new job's ACK and the next FETCH.
    assert slot.ran(run) == Send([ack("jid-1"), ack("jid-2"), FETCH], True)
    assert slot.replied(["OK", "OK", None]) == Send([FETCH], True)


def test_a_server_hanging_up_after_an_error_is_a_lost_connection() -> None:
    host = Host()
    slot = slot_owing_an_ack(host)
    action = slot.replied([ErrorReply("ERR", "shutdown in progress")])
    assert type(action) is Pause
    ((what, exc),) = host.told[-1:]
    assert what == "outage" and isinstance(exc, ConnectionClosedError)
    assert "tcp://faktory:7419 closed the connection after -ERR shutdown in progress" in str(exc)
    assert slot.next() == Send([ack("jid-1"), FETCH], True)


def test_errors_are_triaged(caplog: pytest.LogCaptureFixture) -> None:
    host = Host()
    slot = slot_for(host)
    with caplog.at_level(logging.ERROR, logger="werk.worker"):
        slot.next()
        assert type(slot.failed(AuthenticationError("ERR", "Invalid password"))) is Pause
        slot.next()
        refused = slot.replied([ErrorReply("ERR", "queue names please")])  # FETCH refused
        slot.next()
        unexpected = slot.failed(RuntimeError("a bug"))
    assert type(refused) is Pause and type(unexpected) is Pause
    assert host.events() == ["fatal"]
    assert "FETCH refused: ERR queue names please" in caplog.text
    assert "unexpected error in a fetch slot: RuntimeError('a bug')" in caplog.text


def test_the_hard_stop_loses_what_could_not_be_delivered() -> None:
    host = Host()
    slot = slot_owing_an_ack(host)
    slot.failed(NetworkTimeout("no answer"))
    host.hard_stop.set()
    assert slot.next() is STOP
    assert host.told[-1] == ("lost", ack("jid-1"))


def test_a_job_fetched_after_the_hard_stop_is_given_back_in_one_last_write() -> None:
    host = Host()
    slot = slot_for(host)
    slot.next()
    host.hard_stop.set()  # while the FETCH was out
    host.fetching = False
    action = slot.replied([job("jid-late")])
    assert type(action) is Send and not action.blocking
    (line,) = action.lines
    assert json.loads(line[5:]) == {
        "jid": "jid-late",
        "errtype": "Shutdown",
        "message": "worker stopped before the job could start",
    }
    assert slot.in_io
    assert not host.ledger.inflight  # it never started
    assert slot.replied(["OK"]) is STOP
    assert host.events() == []


def test_a_give_back_that_fails_is_reported_lost() -> None:
    host = Host()
    slot = slot_for(host)
    slot.next()
    host.hard_stop.set()
    host.fetching = False
    (line,) = slot.replied([job("jid-late")]).lines  # type: ignore[union-attr]
    pause = slot.failed(ConnectionClosedError("gone"))
    assert type(pause) is Pause  # the executor's wait returns at once: the stop is set
    assert slot.next() is STOP
    assert host.told[-1] == ("lost", line)


def test_last_reports_go_out_in_one_write_and_owed_ones_until_the_deadline() -> None:
    host = Host(fetching=False)
    host.hard_stop.set()  # the shutdown's last reports come after the hard stop
    fails = [b'FAIL {"jid":"a"}\r\n', b'FAIL {"jid":"b"}\r\n', b'ACK {"jid":"c"}\r\n']
    stop = threading.Event()  # stands in for a Deadline
    slot = slot_for(host, reports=fails, stop=stop)
    assert slot.next() == Send(fails, False)
    assert type(slot.replied(["OK", DISK_FULL, "OK"])) is Pause
    assert slot.next() == Send([fails[1]], False)
    stop.set()  # time is up
    assert type(slot.replied([DISK_FULL])) is Pause
    assert slot.next() is STOP
    assert host.told[-1] == ("lost", fails[1])


def test_backoff_doubles_with_equal_jitter_up_to_its_cap() -> None:
    b = Backoff(base=1.0, cap=4.0, rng=random.Random(0))
    assert [round(b.next_delay(), 2) for _ in range(4)] == [0.92, 1.76, 2.84, 2.52]
    b.reset()
    assert 0.5 <= b.next_delay() <= 1.0


def test_a_deadline_is_a_stop_signal_that_sets_itself() -> None:
    deadline = Deadline(0.05)
    assert not deadline.is_set()
    assert deadline.wait(10) is True  # sleeps until the deadline, not 10 s
    assert deadline.is_set()
    assert Deadline(0).wait() is True


def test_a_long_run_reports_every_job_once() -> None:
    # A reply per line, in order: the reports' replies first, FETCH's last.
    host = Host()
    slot = slot_for(host)
    lines: list[bytes] = []
    replies: list[Reply] = []
    action: Action = slot.next()
    for i in range(20):
        assert type(action) is Send
        lines, replies = action.lines, ["OK"] * (len(action.lines) - 1)
        replies.append(job(f"jid-{i}") if i % 3 else None)
        action = slot.replied(replies)
        if type(action) is JobRun:
            action = slot.ran(run_it(action))
    assert host.ledger.processed == 13 and not host.ledger.inflight
    assert lines[-1] == FETCH and len(lines) == len(replies)
    assert host.events() == []

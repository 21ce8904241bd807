"""The seams server extensions plug into (batches, tracking, unique and expiring jobs, cron
and throttles will), driven end to end over TCP with the small extension of
``tests/server/seam_extension.py``: it refuses, rewrites, discards, throttles and counts.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.server.rawclient import Raw
from tests.server.seam_extension import NARROW, SPACE, Recorder
from tests.server.serverproc import ServerProcess
from tests.servers import MANUAL_EPOCH, ServerFactory

import werk
from werk._protocol.resp import ErrorReply
from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock
from werk.server._extension import PUT_BACK, Extension
from werk.server._manager import Manager
from werk.server._storage import MemoryStorage, SQLiteStorage

T0 = MANUAL_EPOCH


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def srv(make_server: ServerFactory, rec: Recorder) -> EmbeddedServer:
    return make_server(clock=ManualClock(T0), fetch_timeout=3600, extensions=[rec])


def counts(c: Raw) -> dict[str, int]:
    reply = c.cmd("BATCH COUNTS")
    assert isinstance(reply, bytes), reply
    data: dict[str, int] = json.loads(reply)
    return data


def test_a_refusal_is_the_extensions_error_and_stores_nothing(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-refused-01", custom={"refuse": 1}) == ErrorReply(
            "NOTUNIQUE", "Job not unique"
        )
        assert c.push("jid-refused-02", custom={"refuse": "plain"}) == ErrorReply(
            "ERR", "refused by the seam extension"
        )
        # The ordinary checks come first: a bad job gets the ordinary error.
        assert c.push("short", custom={"refuse": 1}) == ErrorReply(
            "ERR", "jobs must have a reasonable jid parameter"
        )
        assert c.push("jid-refused-03", queue="bad queue", custom={"refuse": 1}) == ErrorReply(
            "ERR", 'cannot get "bad queue" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z'
        )
        jobs = [
            {"jid": "jid-bulk-0001", "jobtype": "T", "args": [], "custom": {"refuse": 1}},
            {"jid": "jid-bulk-0002", "jobtype": "T", "args": [], "custom": {"x": 1}},
            {"jid": "jid-bulk-0003", "jobtype": "T", "args": []},
        ]
        reply = c.cmd("PUSHB " + json.dumps(jobs))
        assert json.loads(reply) == {"jid-bulk-0001": "NOTUNIQUE Job not unique"}
        assert counts(c) == {"pushed": 1}  # jid-bulk-0002; the plain job runs no hook
    assert srv.info()["queues"] == {"default": 2}
    with werk.Client(srv.url) as client, pytest.raises(werk.ServerError) as info:
        client.push("T", custom={"refuse": 1})
    assert info.value.code == "NOTUNIQUE" and info.value.message == "Job not unique"


def test_a_push_hook_rewrites_the_job_it_accepts(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-expiring-1", custom={"expires_in": 60}) == "OK"
        job = c.fetch()
    assert job is not None
    assert job["custom"] == {"expires_in": 60, "expires_at": epoch_to_string(T0 + 60)}


def test_fetch_discards_an_expired_job_and_the_same_fetch_takes_the_next(
    srv: EmbeddedServer, rec: Recorder
) -> None:
    with Raw(srv) as c:
        assert c.push("jid-expires-01", custom={"expires_in": 10}) == "OK"
        assert c.push("jid-expires-02", custom={"expires_in": 10}) == "OK"
        assert c.push("jid-plain-0001") == "OK"
        srv.advance(10)  # expired at the second
        job = c.fetch()
        assert job is not None and job["jid"] == "jid-plain-0001"
    assert srv.info()["queues"] == {"default": 0} and srv.info()["working"] == 1
    assert rec.counts["discarded"] == 2 and rec.counts["reserved"] == 0


def test_a_throttled_queue_is_skipped_not_blocking_and_a_freed_slot_wakes_a_fetch(
    srv: EmbeddedServer, rec: Recorder
) -> None:
    with Raw(srv, wid="w1") as w1, Raw(srv, wid="w2") as w2, Raw(srv, wid="w3") as w3:
        assert w1.push("jid-narrow-001", queue=NARROW) == "OK"
        assert w1.push("jid-narrow-002", queue=NARROW) == "OK"
        assert w1.push("jid-wide-00001") == "OK"
        first = w1.fetch(NARROW, "default")
        assert first is not None and first["jid"] == "jid-narrow-001"
        # The throttle is full: the same FETCH skips "narrow" and the next queue delivers.
        other = w2.fetch(NARROW, "default")
        assert other is not None and other["jid"] == "jid-wide-00001"
        w3.send(b"FETCH " + NARROW.encode() + b"\r\n")  # blocks: nothing it may take
        time.sleep(0.05)
        assert srv.info()["queues"][NARROW] == 1
        assert w1.cmd('ACK {"jid":"jid-narrow-001"}') == "OK"  # frees the slot
        woken = json.loads(w3.read())
        assert woken["jid"] == "jid-narrow-002"
    assert rec.in_progress == {"jid-narrow-002"}


def test_hooks_run_in_order_and_only_for_jobs_with_custom(
    srv: EmbeddedServer, rec: Recorder
) -> None:
    with Raw(srv, wid="w1") as c:
        assert c.push("jid-plain-0001") == "OK"
        plain = c.fetch()
        assert plain is not None and c.cmd(f'ACK {{"jid":"{plain["jid"]}"}}') == "OK"
        assert rec.events == []
        assert c.push("jid-custom-001", custom={"n": 1}) == "OK"
        job = c.fetch()
        assert job is not None and c.cmd('ACK {"jid":"jid-custom-001"}') == "OK"
        assert c.cmd('ACK {"jid":"jid-custom-001"}') == "OK"  # no reservation: no hook
    assert rec.events == ["pushed", "reserved", "acked", "released:ack"]


def test_fail_and_expiry_hooks_see_the_outcome_before_it_is_carried_out(
    srv: EmbeddedServer, rec: Recorder
) -> None:
    with Raw(srv, wid="w1") as c:
        for jid, retry in (("jid-retried-01", 3), ("jid-dropped-01", 0), ("jid-killed-01", -1)):
            assert c.push(jid, retry=retry, custom={"n": 1}) == "OK"
            assert c.fetch() is not None
            assert c.cmd(f'FAIL {{"jid":"{jid}","errtype":"E","message":"boom"}}') == "OK"
        assert c.push("jid-expires-r1", reserve_for=60, custom={"n": 1}) == "OK"
        assert c.fetch() is not None
    srv.advance(75)  # the reservation expired: a failure too
    info = srv.info()  # (the first retry came due meanwhile)
    assert info["retries"] + info["queues"]["default"] == 2 and info["dead"] == 1
    failed = {k: v for k, v in rec.counts.items() if k.startswith(("failed", "released"))}
    assert failed == {
        "failed:retry": 2,
        "failed:discard": 1,
        "failed:dead": 1,
        "released:fail": 3,
        "released:expired": 1,
    }


def test_a_reservation_given_back_is_released_and_handed_out_again() -> None:
    rec = Recorder()
    m = Manager(MemoryStorage(), ManualClock(T0), extensions=[rec])
    assert m.push_bytes(b'{"jid":"jid-back-0001","jobtype":"T","args":[],"custom":{"a":1}}') is None
    res = m.fetch(["default"], "w1")
    assert res is not None and res.hooked
    assert m.put_back(res)
    assert rec.events == ["pushed", "reserved", f"released:{PUT_BACK}"]
    again = m.fetch(["default"], "w2")
    assert again is not None and again.jid == "jid-back-0001"


def test_a_job_without_custom_on_an_unguarded_queue_is_not_hooked() -> None:
    m = Manager(MemoryStorage(), ManualClock(T0), extensions=[Recorder()])
    assert m.push_bytes(b'{"jid":"jid-plain-0001","jobtype":"T","args":[]}') is None
    res = m.fetch(["default"], "w1")
    assert res is not None and not res.hooked and not res.custom
    assert Manager(MemoryStorage(), ManualClock(T0)).hooks is None


def test_extension_commands_replace_the_enterprise_only_reply(
    srv: EmbeddedServer, rec: Recorder
) -> None:
    with Raw(srv, wid="w1") as c:
        assert c.cmd("BATCH NEW {}") == ErrorReply("ERR", "no such BATCH subcommand: NEW {}")
        assert c.cmd("TRACK GET jid-1") == ErrorReply(
            "ERR", "tracking subsystem is only available in Faktory Enterprise"
        )
        assert c.push("jid-extend-001", reserve_for=60, custom={"n": 1}) == "OK"
        assert c.fetch() is not None
        assert c.cmd(f"EXTEND jid-extend-001 {T0 + 600}") == "OK"
        assert c.cmd(f"EXTEND jid-extend-001 {T0 + 30}") == ErrorReply(
            "ERR",
            "not extended jid-extend-001",  # never shortened
        )
        srv.advance(75)
        assert srv.info()["working"] == 1  # not expired at the old deadline
        srv.advance(600)
        assert srv.info()["working"] == 0 and srv.info()["retries"] == 1


def test_a_reservation_extension_is_stored(make_server: ServerFactory, tmp_path: Path) -> None:
    srv = make_server(storage="sqlite", data_dir=tmp_path, extensions=[Recorder()])
    with Raw(srv, wid="w1") as c:
        assert c.push("jid-extend-002", reserve_for=60, custom={"n": 1}) == "OK"
        assert c.fetch() is not None
        until = time.time() + 3600
        assert c.cmd(f"EXTEND jid-extend-002 {until}") == "OK"
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, extensions=[Recorder()])
    res = srv.call(lambda: srv.manager.reservations["jid-extend-002"])
    assert res.score == pytest.approx(until)


def test_ticks_run_on_the_injected_clock_and_resume_while_there_is_more(
    srv: EmbeddedServer, rec: Recorder
) -> None:
    rec.more_ticks = 2
    srv.advance(1)
    assert rec.ticks == [T0 + 1] * 3  # the tick and two more slices at the same time
    srv.advance(0.5)
    assert rec.ticks[-1] == T0 + 1.5


def test_workers_that_leave_or_are_reaped_are_reported(srv: EmbeddedServer, rec: Recorder) -> None:
    with Raw(srv, wid="w-leaves"):
        pass
    with Raw(srv, wid="w-silent"):
        deadline = time.monotonic() + 10
        while ("w-leaves", False) not in rec.gone:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        srv.advance(75)
        assert rec.gone == [("w-leaves", False), ("w-silent", True)]


def test_flush_tells_the_extensions(srv: EmbeddedServer, rec: Recorder) -> None:
    with Raw(srv) as c:
        assert c.push("jid-flushed-01", custom={"n": 1}) == "OK"
        assert c.cmd("FLUSH") == "OK"
        assert counts(c) == {}


def test_an_extension_cannot_take_a_verb_of_the_protocol() -> None:
    class Greedy(Extension):
        def commands(self):  # type: ignore[no-untyped-def]
            return {b"PUSH": lambda arg, client: b"+OK\r\n"}

    with pytest.raises(werk.ConfigurationError, match="cannot answer PUSH"):
        Manager(MemoryStorage(), ManualClock(T0), extensions=[Greedy()])


# -- configuration ------------------------------------------------------------------


def test_the_configuration_directory_is_read_at_start_and_on_reload(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    (tmp_path / "conf.d").mkdir()
    conf = tmp_path / "conf.d" / "seam.toml"
    conf.write_text("# the seam extension\n[seam]\nlimit = 2\n")
    rec = Recorder()
    srv = make_server(config_dir=tmp_path, extensions=[rec])
    assert rec.limit == 2
    conf.write_text("[seam]\nlimit = 3\n")
    srv.reload_config()
    assert rec.limit == 3
    conf.write_text("[seam]\n# oops\nlimit = 'many'\n")
    with pytest.raises(
        werk.ConfigurationError, match=r"^conf.d/seam.toml:3: seam.limit must be an integer >= 1"
    ):
        srv.reload_config()
    assert rec.limit == 3  # the previous configuration stays in force


def test_the_configuration_can_be_python_data(make_server: ServerFactory) -> None:
    rec = Recorder()
    make_server(config={"seam": {"limit": 4}}, extensions=[rec])
    assert rec.limit == 4
    with pytest.raises(
        werk.ConfigurationError, match=r'^config\["seam"\]\["limit"\]: seam.limit must be'
    ):
        EmbeddedServer(config={"seam": {"limit": 0}}, extensions=[Recorder()]).start()


def test_a_bad_configuration_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "seam.toml").write_text("[seam]\nlimit = 0\n")
    srv = EmbeddedServer(config_dir=tmp_path, extensions=[Recorder()])
    with pytest.raises(werk.ConfigurationError, match=r"seam.toml:2:"):
        srv.start()
    srv.stop()
    with pytest.raises(werk.ConfigurationError, match="is not a directory"):
        EmbeddedServer(config_dir=tmp_path / "missing")


@pytest.mark.slow
def test_sighup_reloads_and_a_bad_file_is_reported(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    (conf_dir / "conf.d").mkdir(parents=True)
    conf = conf_dir / "conf.d" / "seam.toml"
    conf.write_text("[seam]\nlimit = 1\n")
    data = tmp_path / "data"
    with ServerProcess(
        data, "--config-dir", str(conf_dir), module="tests.server.seam_extension"
    ) as proc:
        conf.write_text("[seam]\nlimit = -1\n")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        _wait_for_log(proc, "configuration not reloaded")
        conf.write_text("[seam]\nlimit = 2\n")
        proc.proc.send_signal(signal.SIGHUP)
        _wait_for_log(proc, "configuration reloaded")
        with Raw("127.0.0.1", proc.port) as c:
            assert c.cmd("PING") == ErrorReply("ERR", "unknown command PING")  # still serving
    log = "".join(proc.log)
    assert "conf.d/seam.toml:2: seam.limit must be an integer >= 1, not -1" in log
    assert "Traceback" not in log


def _wait_for_log(proc: ServerProcess, text: str) -> None:
    deadline = time.monotonic() + 10
    while not any(text in line for line in proc.log):
        assert time.monotonic() < deadline, f"no {text!r} in the log: {proc.log}"
        time.sleep(0.02)


# -- durability ---------------------------------------------------------------------


@pytest.mark.slow
def test_records_and_the_jobs_they_count_survive_kill_9_together(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, module="tests.server.seam_extension") as proc:
        with Raw("127.0.0.1", proc.port, wid="w1") as c:
            for i in range(20):
                assert c.push(f"jid-durable-{i:03d}", custom={"n": i}) == "OK"
            for _ in range(5):
                job = c.fetch()
                assert job is not None
                assert c.cmd(f'ACK {{"jid":"{job["jid"]}"}}') == "OK"
            before = counts(c)
        proc.kill9()
    assert before == {"acked": 5, "pushed": 20, "released:ack": 5, "reserved": 5}
    with (
        ServerProcess(tmp_path, module="tests.server.seam_extension") as proc,
        Raw("127.0.0.1", proc.port) as c,
    ):
        assert counts(c) == before  # read back by the extension's load()
        assert c.info()["faktory"]["queues"] == {"default": 15}


_TORN = """
import os, signal, sys
from tests.server.seam_extension import Recorder
from werk.server._clock import ManualClock
from werk.server._manager import Manager
from werk.server._storage import SQLiteStorage
store = SQLiteStorage(sys.argv[1])
m = Manager(store, ManualClock(1_800_000_000), extensions=[Recorder()])
for i in range(2):
    m.push_bytes(b'{"jid":"jid-torn-%04d","jobtype":"T","args":[],"custom":{"n":1}}' % i)
    store.flush()  # one journal record per push: the job and its count together
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_torn_journal_record_takes_its_records_with_its_jobs(tmp_path: Path) -> None:
    db = tmp_path / "werk.sqlite3"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_TORN), str(db)], timeout=30, cwd=root
    )
    assert proc.returncode == -signal.SIGKILL
    journal = Path(str(db) + ".journal")
    journal.write_bytes(journal.read_bytes()[:-5])  # the last record cut short by a crash
    store = SQLiteStorage(db)
    rec = Recorder()
    m = Manager(store, ManualClock(T0), extensions=[rec])
    assert [item.jid for item in m.queues["default"]] == ["jid-torn-0000"]
    assert rec.counts == {"pushed": 1}
    store.close()
    store = SQLiteStorage(db)  # folded into the database: the same, from there
    assert store.load().records == {SPACE: {"pushed": b"1"}}
    assert [e.jid for e in store.load().entries] == ["jid-torn-0000"]
    store.close()


def test_memory_storage_keeps_no_records() -> None:
    storage = MemoryStorage()
    m = Manager(storage, ManualClock(T0), extensions=[Recorder()])
    assert m.push_bytes(b'{"jid":"jid-memory-01","jobtype":"T","args":[],"custom":{"n":1}}') is None
    again = Recorder()
    Manager(storage, ManualClock(T0), extensions=[again])  # a restart: nothing was kept
    assert again.counts == {}


class Broken(Extension):
    """Every hook raises (check_push only for jobs asking for it)."""

    def check_push(self, job):  # type: ignore[no-untyped-def]
        if job["custom"].get("break"):
            raise RuntimeError("bug in check_push")

    def pushed(self, job):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in pushed")

    def admit(self, queue, wid):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in admit")

    def fetch(self, job, queue, wid):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in fetch")

    def reserved(self, res, job):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in reserved")

    def acked(self, res, job):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in acked")

    def failed(self, res, job, outcome):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in failed")

    def released(self, res, reason):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in released")

    def tick(self, now):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in tick")

    def load(self, records):  # type: ignore[no-untyped-def]
        self.host.guard_queue("default", self)


def test_an_extension_that_raises_loses_no_job(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    srv = make_server(clock=ManualClock(T0), extensions=[Broken()])
    with Raw(srv, wid="w1") as c:
        assert c.push("jid-broken-01", custom={"break": 1}) == ErrorReply("ERR", "internal error")
        assert c.push("jid-ok-000001", retry=1, custom={"n": 1}) == "OK"
        job = c.fetch()
        assert job is not None and job["jid"] == "jid-ok-000001"
        assert c.cmd('FAIL {"jid":"jid-ok-000001","errtype":"E"}') == "OK"
        srv.advance(60)  # the retry is due, and the tick raises
        again = c.fetch()
        assert again is not None and again["failure"]["retry_count"] == 0
        assert c.cmd('ACK {"jid":"jid-ok-000001"}') == "OK"
    info = srv.info()
    assert info["queues"] == {"default": 0} and info["processed"] == 2
    assert info["working"] == info["retries"] == info["dead"] == 0
    logged = caplog.text
    for hook in ("check_push", "pushed", "admit", "fetch", "reserved", "acked", "failed"):
        assert f"Broken.{hook} failed" in logged, hook
    assert "Broken.released failed" in logged and "Broken.tick failed" in logged

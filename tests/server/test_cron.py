"""Cron on the manual clock: each tick pushes one job, exactly once, across reloads and
restarts; only the latest missed tick is caught up; bad entries are refused with the file
and line (the configuration is the server's, docs/enterprise.md sections 7 and 8)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from tests.server.rawclient import Raw
from tests.server.seam_extension import Recorder
from tests.server.serverproc import ServerProcess
from tests.servers import MANUAL_EPOCH, ServerFactory

import werk
from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock
from werk.server._confd import Config
from werk.server._cron import Cron, read_entries
from werk.server._manager import Manager
from werk.server._storage import SQLiteStorage

T0 = MANUAL_EPOCH  # 2027-01-15 08:00:00 UTC, a tick of "*/5 * * * *"

FIVE = {
    "schedule": "*/5 * * * *",
    "job": {
        "type": "FiveJob",
        "queue": "cronq",
        "args": [1, "two"],
        "retry": 3,
        "reserve_for": 600,
        "custom": {"team": "ops"},
    },
}


def queued(srv: EmbeddedServer, queue: str = "cronq") -> int:
    return int(srv.info()["queues"].get(queue, 0))


def drain(srv: EmbeddedServer, queue: str = "cronq") -> list[dict[str, Any]]:
    jobs = []
    with Raw(srv) as c:
        for _ in range(queued(srv, queue)):  # an empty FETCH would wait for the clock
            job = c.fetch(queue)
            assert job is not None
            jobs.append(job)
            assert c.cmd(f'ACK {{"jid":"{job["jid"]}"}}') == "OK"
    assert queued(srv, queue) == 0
    return jobs


def test_a_tick_pushes_one_job_built_from_the_entry(make_server: ServerFactory) -> None:
    cron = Cron()
    srv = make_server(clock=ManualClock(T0 + 1), config={"cron": [FIVE]}, extensions=[cron])
    srv.advance(240)  # 08:04:01: no tick yet (08:00 was before the entry was seen)
    assert queued(srv) == 0
    srv.advance(59)  # 08:05:00
    [job] = drain(srv)
    assert job["jobtype"] == "FiveJob" and job["queue"] == "cronq"
    assert job["args"] == [1, "two"] and job["retry"] == 3 and job["reserve_for"] == 600
    assert job["custom"] == {"team": "ops"}
    assert len(job["jid"]) == 16 and "at" not in job
    assert job["created_at"] == epoch_to_string(T0 + 300)
    for _ in range(10):
        srv.advance(1)  # the same slot: nothing more
    assert queued(srv) == 0
    srv.advance(290)  # 08:10:00
    [again] = drain(srv)
    assert again["jid"] != job["jid"]
    entry = cron.entries[0]
    assert [jid for _, jid in cron.state[entry.id].history] == [again["jid"], job["jid"]]
    assert cron.state[entry.id].last == T0 + 600


def test_a_jump_of_the_clock_fires_only_the_latest_tick(make_server: ServerFactory) -> None:
    entry = {"schedule": "*/5 * * * *", "job": {"type": "T", "custom": {"expires_in": 600}}}
    srv = make_server(clock=ManualClock(T0), config={"cron": [entry]})  # the standard list
    srv.advance(3600 + 150)  # 09:02:30: twelve ticks passed, one fires
    [job] = drain(srv, "default")
    # expires_in counts from the tick (09:00), not from the push
    assert job["custom"] == {"expires_at": epoch_to_string(T0 + 3600 + 600)}


def test_a_refused_push_skips_the_tick(make_server: ServerFactory) -> None:
    cron, rec = Cron(), Recorder()
    refused = {"schedule": "* * * * *", "job": {"type": "T", "custom": {"refuse": 1}}}
    srv = make_server(clock=ManualClock(T0), config={"cron": [refused]}, extensions=[cron, rec])
    srv.advance(60)
    srv.advance(1)
    assert (cron.fired, cron.skipped) == (0, 1)  # logged and counted, not retried
    srv.advance(59)
    assert (cron.fired, cron.skipped) == (0, 2)
    assert queued(srv, "default") == 0


def test_two_identical_entries_both_fire(make_server: ServerFactory) -> None:
    srv = make_server(clock=ManualClock(T0), config={"cron": [FIVE, FIVE]})
    srv.advance(300)
    assert len({job["jid"] for job in drain(srv)}) == 2


def write(conf: Path, text: str) -> None:
    (conf / "conf.d").mkdir(exist_ok=True)
    (conf / "conf.d" / "cron.toml").write_text(text)


EVERY_MINUTE = """\
[[cron]]
schedule = "* * * * *"
[cron.job]
type = "Minutely"
queue = "cronq"
"""


def test_reload_keeps_unchanged_entries_and_starts_new_ones_at_their_next_tick(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    write(tmp_path, EVERY_MINUTE)
    cron = Cron()
    srv = make_server(clock=ManualClock(T0), config_dir=tmp_path, extensions=[cron])
    srv.advance(60)
    assert len(drain(srv)) == 1
    kept = cron.entries[0].id
    write(tmp_path, EVERY_MINUTE + '\n[[cron]]\nschedule = "@hourly"\njob = {type = "H"}\n')
    srv.reload_config()
    srv.advance(1)
    assert queued(srv) == 0 and queued(srv, "default") == 0  # 08:01 already fired
    assert cron.entries[0].id == kept and len(cron.state[kept].history) == 1
    srv.advance(59)  # 08:02
    assert len(drain(srv)) == 1
    write(tmp_path, EVERY_MINUTE.replace("Minutely", "Renamed"))  # a new entry
    srv.reload_config()
    assert cron.entries[0].id != kept and kept not in cron.state
    srv.advance(30)
    assert queued(srv) == 0  # 08:02 is not caught up for the new entry
    srv.advance(30)
    assert [job["jobtype"] for job in drain(srv)] == ["Renamed"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[cron]]\nschedule = "*/5 * * *"\n[cron.job]\ntype = "T"\n',
            r"^conf.d/cron.toml:2: cron.schedule '\*/5 \* \* \*': 4 fields",
        ),
        (
            '[[cron]]\nschedule = "@every 5m"\n[cron.job]\ntype = "T"\n',
            r"^conf.d/cron.toml:2: cron.schedule '@every 5m': @every is not a cron schedule",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\nretry = "3"\n',
            r"^conf.d/cron.toml:5: cron.job.retry must be an integer, not '3'",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\njid = "abcdefgh12"\n',
            r"^conf.d/cron.toml:5: unknown key cron.job.jid",
        ),
        (
            '[[cron]]\nschedule = "@daily"\nqueue = "q"\n[cron.job]\ntype = "T"\n',
            r"^conf.d/cron.toml:3: unknown key cron.queue",
        ),
        ('[[cron]]\nschedule = "@daily"\n', r"^conf.d/cron.toml:1: cron.job is required"),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\nqueue = "q"\n',
            r"^conf.d/cron.toml:3: cron.job.type is required",
        ),
        (
            '\n[[cron]]\nschedule = "@daily"\njob = { type = "T", queue = "a b" }\n',
            r"^conf.d/cron.toml:4: cron.job.queue 'a b' is not a queue name",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\nreserve_for = 86401\n',
            r"^conf.d/cron.toml:5: cron.job.reserve_for must be at most 86400",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\nargs = [nan]\n',
            r"^conf.d/cron.toml:5: cron.job.args holds a value JSON cannot carry",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\ncustom = 1\n',
            r"^conf.d/cron.toml:5: cron.job.custom must be a table",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\n'
            "[cron.job.custom]\nunique_for = 0\n",
            r"^conf.d/cron.toml:6: cron.job.custom: invalid unique_for",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\n'
            '[cron.job.custom]\nunique_for = 60\nunique_until = "end"\n',
            r"^conf.d/cron.toml:7: cron.job.custom: invalid unique_until",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\n'
            '[cron.job.custom]\nexpires_in = "1h"\n',
            r"^conf.d/cron.toml:6: cron.job.custom: invalid expires_in",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\n'
            '[cron.job.custom]\nexpires_at = "tomorrow"\n',
            r"^conf.d/cron.toml:6: cron.job.custom: invalid timestamp for 'expires_at'",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = "T"\n'
            '[cron.job.custom]\nbid = "b-1"\n',
            r"^conf.d/cron.toml:6: cron.job.custom.bid is not allowed in a cron entry",
        ),
        (
            '[[cron]]\nschedule = 5\n[cron.job]\ntype = "T"\n',
            r"^conf.d/cron.toml:2: cron.schedule must be a string, not 5",
        ),
        (
            '[[cron]]\nschedule = "@daily"\n[cron.job]\ntype = ""\n',
            r"^conf.d/cron.toml:4: cron.job.type must not be empty",
        ),
    ],
)
def test_a_bad_entry_is_refused_and_the_old_ones_stay(
    make_server: ServerFactory, tmp_path: Path, text: str, message: str
) -> None:
    write(tmp_path, EVERY_MINUTE)
    cron = Cron()
    srv = make_server(clock=ManualClock(T0), config_dir=tmp_path, extensions=[cron])
    write(tmp_path, text)
    with pytest.raises(werk.ConfigurationError, match=message):
        srv.reload_config()
    assert [e.jobtype for e in cron.entries] == ["Minutely"]
    srv.advance(60)
    assert len(drain(srv)) == 1  # the old entry still fires
    with pytest.raises(werk.ConfigurationError, match=message):
        EmbeddedServer(config_dir=tmp_path, clock=ManualClock(T0)).start()


def test_python_data_is_refused_by_its_keys() -> None:
    bad = {"cron": [FIVE, {"schedule": "61 * * * *", "job": {"type": "T"}}]}
    with pytest.raises(
        werk.ConfigurationError,
        match=r'^config\["cron"\]\[1\]\["schedule"\]: cron.schedule \'61 \* \* \* \*\': minute',
    ):
        EmbeddedServer(config=bad).start()
    odd = {"cron": [{"schedule": "@daily", "job": {"type": "T", "custom": {"s": {1, 2}}}}]}
    with pytest.raises(
        werk.ConfigurationError,
        match=r'^config\["cron"\]\[0\]\["job"\]\["custom"\]: cron.job.custom holds a value JSON',
    ):
        EmbeddedServer(config=odd).start()


def test_restarts_neither_repeat_nor_replay_ticks(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    def start(at: float) -> tuple[EmbeddedServer, Cron]:
        cron = Cron()
        srv = make_server(
            storage="sqlite",
            data_dir=tmp_path / "data",
            clock=ManualClock(at),
            config={"cron": [FIVE]},
            extensions=[cron],
        )
        return srv, cron

    srv, cron = start(T0 + 1)  # first seen at 08:00:01: 08:00 is not caught up
    srv.stop()
    srv, cron = start(T0 + 1020)  # 08:17: down over three ticks, the latest fires
    srv.advance(1)
    assert [job["created_at"] for job in drain(srv)] == [epoch_to_string(T0 + 1021)]
    assert cron.state[cron.entries[0].id].last == T0 + 900
    srv.stop()
    srv, cron = start(T0 + 1100)  # 08:18:20: 08:15 fired already
    srv.advance(1)
    assert queued(srv) == 0
    srv.advance(100)  # 08:20:01
    assert len(drain(srv)) == 1
    srv.stop()
    srv, cron = start(T0 + 1300)  # same slot once more
    for _ in range(3):
        srv.advance(1)
    assert queued(srv) == 0
    assert len(cron.state[cron.entries[0].id].history) == 2  # the history survives


def test_enqueue_now_pushes_without_moving_the_last_tick(make_server: ServerFactory) -> None:
    cron = Cron()
    srv = make_server(clock=ManualClock(T0), config={"cron": [FIVE]}, extensions=[cron])
    entry = cron.entries[0]
    jid = srv.call(cron.enqueue_now, entry.id)
    [job] = drain(srv)
    assert job["jid"] == jid and job["jobtype"] == "FiveJob"
    assert cron.state[entry.id].last is None
    srv.advance(300)
    assert len(drain(srv)) == 1  # the 08:05 tick still fires
    with pytest.raises(KeyError):
        srv.call(cron.enqueue_now, "nope")


def _queue_size(port: int, queue: str = "cronq") -> int:
    with Raw("127.0.0.1", port) as c:
        return int(c.info()["faktory"]["queues"].get(queue, 0))


def _wait_for_jobs(port: int, count: int) -> None:
    deadline = time.monotonic() + 30
    while _queue_size(port) < count:
        assert time.monotonic() < deadline, "the cron tick never fired"
        time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_neither_repeats_a_tick_nor_replays_more_than_the_latest(tmp_path: Path) -> None:
    write(tmp_path, EVERY_MINUTE)
    # A shifted clock 5 s before a whole minute: the next tick comes 5 s after the start.
    offset = 55 - time.time() % 60

    def server(shift: float) -> ServerProcess:
        args = ("--config-dir", str(tmp_path), "--clock-offset", str(shift))
        return ServerProcess(tmp_path / "data", *args, module="tests.server.cron_process")

    with server(offset) as proc:
        _wait_for_jobs(proc.port, 1)
        proc.kill9()  # right after the tick's commit
    with server(offset) as proc:  # the same minute: the stored tick does not fire again
        time.sleep(2.5)  # two runs of the periodic tasks
        assert _queue_size(proc.port) == 1
        proc.kill9()
    with server(offset + 600) as proc:  # ten minutes later: only the latest tick fires
        _wait_for_jobs(proc.port, 2)
        time.sleep(2.5)
        assert _queue_size(proc.port) == 2
        with Raw("127.0.0.1", proc.port) as c:
            first, second = c.fetch("cronq"), c.fetch("cronq")
        assert first is not None and second is not None
        assert first["jid"] != second["jid"] and second["jobtype"] == "Minutely"


@pytest.mark.slow
def test_sighup_refuses_a_bad_cron_file_with_its_line_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    write(tmp_path, EVERY_MINUTE)
    with ServerProcess(tmp_path / "data", "--config-dir", str(tmp_path)) as proc:
        assert proc.proc is not None
        write(tmp_path, EVERY_MINUTE.replace('"* * * * *"', '"* * * * * *"'))
        proc.proc.send_signal(signal.SIGHUP)
        line = _wait_for_log(proc, "configuration not reloaded")
        assert "conf.d/cron.toml:2: cron.schedule '* * * * * *': 6 fields" in line
        write(tmp_path, EVERY_MINUTE + "[cron.job.custom]\nx = 1\n")
        proc.proc.send_signal(signal.SIGHUP)
        _wait_for_log(proc, "configuration reloaded")
    assert "Traceback" not in "".join(proc.log)


def _wait_for_log(proc: ServerProcess, text: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        for line in proc.log:
            if text in line:
                return line
        assert time.monotonic() < deadline, f"no {text!r} in the log: {proc.log}"
        time.sleep(0.02)


def test_an_entry_keeps_its_identity_wherever_it_is_written() -> None:
    hourly = {"schedule": "@hourly", "job": {"type": "H"}}
    first = read_entries(Config.from_data({"cron": [FIVE, hourly, FIVE]}))
    moved = read_entries(Config.from_data({"cron": [hourly, FIVE, FIVE]}))
    assert {e.id for e in first} == {e.id for e in moved}
    five, _, twin = first
    assert twin.id == f"{five.id}-1" and len(five.id) == 16
    edited = read_entries(Config.from_data({"cron": [{**FIVE, "schedule": "*/5 * * * 0-6"}]}))
    assert edited[0].id != five.id  # the same times, but an edited entry is a new one


def test_after_a_lost_commit_the_tick_fires_again(tmp_path: Path) -> None:
    # The server reloads its state from storage when a commit fails (Manager.load): the
    # tick's job and its record were lost together, so the tick is due again.
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    clock = ManualClock(T0 + 1)
    cron = Cron()
    m = Manager(store, clock, extensions=[cron])
    m.configure(Config.from_data({"cron": [FIVE]}))
    store.flush()  # the entry's first sight is stored
    clock.set(T0 + 300)
    cron.tick(clock.now())
    assert len(m.queues["cronq"]) == 1 and cron.state[cron.entries[0].id].last == T0 + 300
    m.load()  # as after a failed commit of that turn: back to what is stored
    assert len(m.queues.get("cronq", ())) == 0
    assert cron.state[cron.entries[0].id].last is None
    cron.tick(clock.now() + 1)
    assert len(m.queues["cronq"]) == 1 and cron.state[cron.entries[0].id].last == T0 + 300
    # (not closed: the lost turn's changes are still pending in this storage object)

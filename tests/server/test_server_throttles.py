"""Queue throttles (docs/enterprise.md section 9) over TCP on the manual clock: concurrency
and per-worker limits, a full queue skipped (not blocking the FETCH's other queues), a
blocked FETCH woken by a freed slot, slots freed by ACK, FAIL, reservation expiry, timeout
and the reaper, reloads, bad configuration, and durability (restart, ``kill -9``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.server.blocking import fetch_nothing, park_fetch
from tests.server.rawclient import Raw
from tests.server.serverproc import ServerProcess
from tests.servers import MANUAL_EPOCH, ServerFactory

import werk
from werk.server import EmbeddedServer, ManualClock
from werk.server._throttles import SPACE, Throttles

T0 = MANUAL_EPOCH


def throttled(srv: EmbeddedServer) -> Throttles:
    return next(e for e in srv.manager.hooks.all if isinstance(e, Throttles))  # type: ignore[union-attr]


def in_use(srv: EmbeddedServer) -> dict[str, int]:
    ext = throttled(srv)
    return srv.call(lambda: dict(ext.in_use))


def server_with(
    make_server: ServerFactory, fetch_timeout: float = 2, **throttles: dict[str, Any]
) -> EmbeddedServer:
    config = {"throttles": throttles}
    return make_server(clock=ManualClock(T0), fetch_timeout=fetch_timeout, config=config)


def fill(c: Raw, queue: str, n: int, prefix: str = "jid") -> None:
    for i in range(n):
        assert c.push(f"{prefix}-{queue}-{i:04d}", queue=queue) == "OK"


def jid_of(job: dict[str, Any] | None) -> str:
    assert job is not None
    return str(job["jid"])


def test_a_concurrency_limit_skips_the_full_queue(make_server: ServerFactory) -> None:
    srv = server_with(make_server, narrow={"concurrency": 2, "timeout": 60})
    with Raw(srv, wid="worker-a") as a, Raw(srv, wid="worker-b") as b:
        fill(a, "narrow", 3)
        fill(a, "default", 2)
        assert jid_of(a.fetch("narrow", "default")) == "jid-narrow-0000"
        assert jid_of(b.fetch("narrow", "default")) == "jid-narrow-0001"
        # Full across both workers: the FETCH's next queue delivers instead.
        assert jid_of(b.fetch("narrow", "default")) == "jid-default-0000"
        assert in_use(srv) == {"narrow": 2}
        assert a.cmd('ACK {"jid":"jid-narrow-0000"}') == "OK"
        assert jid_of(b.fetch("narrow", "default")) == "jid-narrow-0002"
        # FAIL frees the slot as well.
        assert b.cmd('FAIL {"jid":"jid-narrow-0001","message":"x"}') == "OK"
        assert in_use(srv) == {"narrow": 1}
        # A plain queue is never throttled.
        assert jid_of(a.fetch("default")) == "jid-default-0001"


def test_a_per_worker_limit_counts_each_worker_process(make_server: ServerFactory) -> None:
    srv = server_with(make_server, bulk={"worker": 1, "timeout": 60})
    with Raw(srv, wid="worker-a") as a, Raw(srv, wid="worker-b") as b:
        fill(a, "bulk", 4)
        fill(a, "other", 1)
        assert jid_of(a.fetch("bulk", "other")) == "jid-bulk-0000"
        assert jid_of(a.fetch("bulk", "other")) == "jid-other-0000"  # a's one slot is taken
        assert jid_of(b.fetch("bulk")) == "jid-bulk-0001"  # b has its own
        assert fetch_nothing(srv, a, "bulk") is None
        # A second connection of the same worker process shares its slots.
        with Raw(srv, wid="worker-a") as a2:
            assert fetch_nothing(srv, a2, "bulk") is None
        assert a.cmd('ACK {"jid":"jid-bulk-0000"}') == "OK"
        assert jid_of(a.fetch("bulk")) == "jid-bulk-0002"


def test_a_freed_slot_wakes_a_blocked_fetch(make_server: ServerFactory) -> None:
    srv = server_with(make_server, narrow={"concurrency": 1, "timeout": 60})
    with Raw(srv, wid="worker-a") as a, Raw(srv, wid="worker-b") as b:
        fill(a, "narrow", 2)
        assert jid_of(a.fetch("narrow")) == "jid-narrow-0000"
        park_fetch(srv, b, "narrow")  # blocked: the one slot is taken
        assert a.cmd('ACK {"jid":"jid-narrow-0000"}') == "OK"
        # No clock move: the ACK's freed slot handed the waiting job to b at once.
        assert jid_of(json.loads(b.read())) == "jid-narrow-0001"
        assert in_use(srv) == {"narrow": 1}


def test_the_timeout_reclaims_the_slot_of_a_worker_that_died(make_server: ServerFactory) -> None:
    srv = server_with(make_server, 3600, narrow={"concurrency": 1, "timeout": 30})
    with Raw(srv, wid="worker-b") as b:
        fill(b, "narrow", 2)
        dying = Raw(srv, wid="worker-dies")
        assert jid_of(dying.fetch("narrow")) == "jid-narrow-0000"
        dying.close()  # gone without ACK: its job stays reserved (reserve_for 1800 s)
        park_fetch(srv, b, "narrow")
        srv.advance(29)
        assert in_use(srv) == {"narrow": 1}
        srv.advance(1)  # the timeout: slot reclaimed, the blocked FETCH woken
        assert jid_of(json.loads(b.read())) == "jid-narrow-0001"
        assert srv.info()["reserved"] == 2  # the job itself was not failed
        assert throttled(srv).reclaimed == 1
        # The dead job's late ACK changes nothing (its slot is gone already).
        assert b.cmd('ACK {"jid":"jid-narrow-0000"}') == "OK"
        assert in_use(srv) == {"narrow": 1}


def test_a_reaped_worker_frees_its_slots_before_the_timeout(make_server: ServerFactory) -> None:
    srv = server_with(make_server, narrow={"concurrency": 1, "timeout": 3600})
    with Raw(srv, wid="worker-b") as b:
        fill(b, "narrow", 1)
        # Connected but silent (hung): no BEAT for 60 s.
        silent = Raw(srv, wid="worker-silent")
        assert jid_of(silent.fetch("narrow")) == "jid-narrow-0000"
        srv.advance(59)
        assert in_use(srv) == {"narrow": 1}
        srv.advance(31)  # reaped on the next 15 s tick after 60 s
        assert in_use(srv) == {}
        assert throttled(srv).reclaimed == 1
        assert silent.closed_by_server()
        silent.close()


def test_reservation_expiry_frees_the_slot(make_server: ServerFactory) -> None:
    srv = server_with(make_server, narrow={"concurrency": 1, "timeout": 86400})
    with Raw(srv, wid="worker-a") as a:
        assert a.push("jid-short-0001", queue="narrow", reserve_for=60) == "OK"
        assert jid_of(a.fetch("narrow")) == "jid-short-0001"
        srv.advance(75)  # expired at the next Busy run after 60 s: a FAIL, then a retry
        assert in_use(srv) == {}
        assert srv.info()["retries"] == 1


def test_a_reload_changes_the_limits(make_server: ServerFactory, tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    toml = conf / "throttles.toml"
    toml.write_text("[throttles]\nnarrow = { concurrency = 1, timeout = 60 }\n")
    srv = make_server(clock=ManualClock(T0), fetch_timeout=2, config_dir=tmp_path)
    with Raw(srv, wid="worker-a") as a, Raw(srv, wid="worker-b") as b:
        fill(a, "narrow", 4)
        assert jid_of(a.fetch("narrow")) == "jid-narrow-0000"
        park_fetch(srv, b, "narrow")
        toml.write_text("[throttles]\nnarrow = { concurrency = 2, timeout = 60 }\n")
        srv.reload_config()  # raised: the waiting FETCH gets a job at once
        assert jid_of(json.loads(b.read())) == "jid-narrow-0001"
        assert fetch_nothing(srv, b, "narrow") is None
        # A bad file is refused with its line; the limit in force stays.
        toml.write_text("[throttles]\nnarrow = { concurrency = 0, timeout = 60 }\n")
        with pytest.raises(werk.ConfigurationError, match=r"conf.d/throttles.toml:2: "):
            srv.reload_config()
        assert fetch_nothing(srv, b, "narrow") is None
        # Removed: the queue is free at once; the held slots are no limit any more.
        toml.write_text("")
        srv.reload_config()
        assert jid_of(b.fetch("narrow")) == "jid-narrow-0002"
        assert jid_of(b.fetch("narrow")) == "jid-narrow-0003"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "[throttles]\na = { concurrency = 2 }\n",
            "conf.d/bad.toml:2: throttles.a.timeout is required",
        ),
        (
            "[throttles]\na = { concurrency = 2, worker = 1, timeout = 5 }\n",
            "conf.d/bad.toml:2: throttles.a needs exactly one of concurrency or worker, not both",
        ),
        (
            "[throttles]\na = { timeout = 5 }\n",
            "conf.d/bad.toml:2: throttles.a needs exactly one of concurrency or worker",
        ),
        (
            "[throttles]\n\na = { concurrency = 0, timeout = 5 }\n",
            "conf.d/bad.toml:3: throttles.a.concurrency must be an integer >= 1, not 0",
        ),
        (
            '[throttles.a]\nworker = 1\ntimeout = "60"\n',
            "conf.d/bad.toml:3: throttles.a.timeout must be an integer >= 1, not '60'",
        ),
        (
            "[throttles.a]\nworker = 1.5\ntimeout = 60\n",
            "conf.d/bad.toml:2: throttles.a.worker must be an integer >= 1, not 1.5",
        ),
        (
            "[throttles]\na = { concurrency = 1, timeout = 5, rate = 3 }\n",
            "conf.d/bad.toml:2: unknown key throttles.a.rate (known: concurrency, timeout, worker)",
        ),
        (
            '[throttles]\n"bad queue" = { concurrency = 1, timeout = 5 }\n',
            "conf.d/bad.toml:2: throttles.bad queue: a throttle's name is a queue name",
        ),
    ],
)
def test_a_bad_throttle_is_refused_with_its_file_and_line(
    make_server: ServerFactory, tmp_path: Path, text: str, error: str
) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "bad.toml").write_text(text)
    with pytest.raises(werk.ConfigurationError) as info:
        make_server(config_dir=tmp_path)
    assert str(info.value) == error


def test_slots_survive_a_restart(make_server: ServerFactory, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    config = {"throttles": {"narrow": {"concurrency": 1, "timeout": 600}}}
    options: dict[str, Any] = {"storage": "sqlite", "data_dir": tmp_path, "clock": clock}
    srv = make_server(config=config, fetch_timeout=2, **options)
    with Raw(srv, wid="worker-a") as a:
        fill(a, "narrow", 2)
        assert jid_of(a.fetch("narrow")) == "jid-narrow-0000"
    srv.stop()
    srv = make_server(config=config, fetch_timeout=2, **options)
    assert in_use(srv) == {"narrow": 1}
    with Raw(srv, wid="worker-a") as a:
        assert fetch_nothing(srv, a, "narrow") is None
        assert a.cmd('ACK {"jid":"jid-narrow-0000"}') == "OK"  # reserved before the restart
        assert jid_of(a.fetch("narrow")) == "jid-narrow-0001"
    stored = srv.call(lambda: srv.manager.storage.load().records.get(SPACE, {}))
    assert list(stored) == ["jid-narrow-0001"]


@pytest.mark.slow
def test_slots_survive_kill_9(tmp_path: Path) -> None:
    (tmp_path / "conf" / "conf.d").mkdir(parents=True)
    (tmp_path / "conf" / "conf.d" / "t.toml").write_text(
        "[throttles]\nnarrow = { concurrency = 1, timeout = 600 }\n"
    )
    args = ("--config-dir", str(tmp_path / "conf"))
    data = tmp_path / "data"
    with ServerProcess(data, *args) as proc:
        with Raw("127.0.0.1", proc.port, wid="worker-a") as c:
            fill(c, "narrow", 2)
            fill(c, "other", 1)
            assert jid_of(c.fetch("narrow")) == "jid-narrow-0000"
        proc.kill9()
    with ServerProcess(data, *args) as proc, Raw("127.0.0.1", proc.port, wid="worker-b") as c:
        # The slot is still taken: the FETCH skips narrow and takes the other queue.
        assert jid_of(c.fetch("narrow", "other")) == "jid-other-0000"
        assert c.cmd('ACK {"jid":"jid-narrow-0000"}') == "OK"
        assert jid_of(c.fetch("narrow", "other")) == "jid-narrow-0001"

"""Unique jobs (docs/enterprise.md section 5) over TCP on the manual clock: the lock's key,
its release at ACK or at FETCH, its life through a schedule and a retry, its end after
``unique_for``, PUSHB, bad values, and its durability (restart, ``kill -9``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.server.rawclient import Raw
from tests.server.serverproc import ServerProcess
from tests.servers import MANUAL_EPOCH, ServerFactory

from werk._protocol.resp import ErrorReply
from werk._protocol.timefmt import epoch_to_string
from werk.server import EmbeddedServer, ManualClock
from werk.server._unique import SPACE, UniqueJobs

NOT_UNIQUE = ErrorReply("NOTUNIQUE", "Job not unique")
T0 = MANUAL_EPOCH


@pytest.fixture
def srv(make_server: ServerFactory) -> EmbeddedServer:
    return make_server(clock=ManualClock(T0), fetch_timeout=0.2)


def unique(seconds: float = 60, **more: object) -> dict[str, object]:
    return {"unique_for": seconds, **more}


def ack(c: Raw, jid: str) -> None:
    assert c.cmd(json.dumps({"jid": jid}).join(["ACK ", ""])) == "OK"


def locks(srv: EmbeddedServer) -> dict[str, str]:
    ext = next(e for e in srv.manager.hooks.all if isinstance(e, UniqueJobs))  # type: ignore[union-attr]
    return srv.call(lambda: {k: lock.jid for k, lock in ext.locks.items()})


def test_a_duplicate_is_refused_until_the_holder_is_acked(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-first-001", args=[1, {"b": 2, "a": 1}], custom=unique()) == "OK"
        # The same args, object keys in another order: the same key.
        second = c.push("jid-second-01", args=[1, {"a": 1, "b": 2}], custom=unique())
        assert second == NOT_UNIQUE
        # Another queue, other args or another jobtype: other keys.
        assert c.push("jid-otherq-01", args=[1, {"a": 1, "b": 2}], queue="q2", custom=unique())
        assert c.push("jid-otherargs", args=[2], custom=unique()) == "OK"
        assert c.push("jid-othertype", jobtype="U", args=[1, {"a": 1, "b": 2}], custom=unique())
        # A job without unique_for neither checks nor takes the lock.
        assert c.push("jid-bypass-01", args=[1, {"a": 1, "b": 2}]) == "OK"
        assert c.push("jid-bypass-02", args=[1, {"a": 1, "b": 2}], custom={"x": 1}) == "OK"
        job = c.fetch()
        assert job is not None and job["jid"] == "jid-first-001"
        # Fetched but not yet acknowledged ("success", the default): still locked.
        assert c.push("jid-second-02", args=[1, {"a": 1, "b": 2}], custom=unique()) == NOT_UNIQUE
        ack(c, "jid-first-001")
        assert c.push("jid-second-03", args=[1, {"a": 1, "b": 2}], custom=unique()) == "OK"
    assert srv.info()["queues"] == {"default": 5, "q2": 1}


def test_until_start_releases_the_lock_at_fetch(srv: EmbeddedServer) -> None:
    custom = unique(60, unique_until="start")
    with Raw(srv) as c:
        assert c.push("jid-start-001", custom=custom) == "OK"
        assert c.push("jid-start-002", custom=custom) == NOT_UNIQUE
        job = c.fetch()
        assert job is not None and job["jid"] == "jid-start-001"
        assert c.push("jid-start-003", custom=custom) == "OK"
        # The first one's ACK does not touch the lock of the third.
        ack(c, "jid-start-001")
        assert c.push("jid-start-004", custom=custom) == NOT_UNIQUE


def test_the_lock_ends_after_unique_for_even_if_never_acked(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-ends-0001", custom=unique(10.5)) == "OK"
        srv.advance(10.4)
        assert c.push("jid-ends-0002", custom=unique(10.5)) == NOT_UNIQUE
        srv.advance(0.1)  # exactly unique_for after the push
        assert locks(srv) == {}  # the periodic task dropped it
        assert c.push("jid-ends-0003", custom=unique(10.5)) == "OK"
        # The old holder's ACK leaves the new lock alone.
        job = c.fetch()
        assert job is not None and job["jid"] == "jid-ends-0001"
        ack(c, "jid-ends-0001")
        assert c.push("jid-ends-0004", custom=unique(10.5)) == NOT_UNIQUE
        assert list(locks(srv).values()) == ["jid-ends-0003"]


def test_a_scheduled_job_holds_the_lock_through_its_delay(srv: EmbeddedServer) -> None:
    at = epoch_to_string(T0 + 3600)
    with Raw(srv) as c:
        assert c.push("jid-sched-001", at=at, custom=unique(600)) == "OK"
        srv.advance(3600 + 599)  # enqueued at T0+3600; the lock ends at T0+4200
        assert c.push("jid-sched-002", custom=unique(600)) == NOT_UNIQUE
        srv.advance(1)
        assert c.push("jid-sched-003", custom=unique(600)) == "OK"


def test_a_retry_keeps_the_lock_without_a_new_check(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-retry-001", custom=unique(3600)) == "OK"
        assert c.fetch() is not None
        assert c.cmd('FAIL {"jid":"jid-retry-001","message":"boom"}') == "OK"
        assert c.push("jid-retry-002", custom=unique(3600)) == NOT_UNIQUE
        srv.advance(600)  # the retry comes back (no uniqueness check: not a push)
        job = c.fetch()
        assert job is not None and job["jid"] == "jid-retry-001"
        assert c.push("jid-retry-003", custom=unique(3600)) == NOT_UNIQUE
        ack(c, "jid-retry-001")
        assert c.push("jid-retry-004", custom=unique(3600)) == "OK"


def test_a_dead_job_keeps_the_lock_until_it_expires(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-dead-0001", retry=-1, custom=unique(100)) == "OK"
        assert c.fetch() is not None
        assert c.cmd('FAIL {"jid":"jid-dead-0001"}') == "OK"
        assert srv.info()["dead"] == 1
        assert c.push("jid-dead-0002", custom=unique(100)) == NOT_UNIQUE
        # Deleting it (MUTATE) does not touch the lock either.
        assert c.cmd('MUTATE {"cmd":"clear","target":"dead"}') == "OK"
        assert srv.info()["dead"] == 0
        assert c.push("jid-dead-0003", custom=unique(100)) == NOT_UNIQUE
        srv.advance(100)
        assert c.push("jid-dead-0004", custom=unique(100)) == "OK"


def test_a_job_discarded_by_fail_keeps_the_lock_until_it_expires(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-disc-0001", retry=0, custom=unique(100)) == "OK"
        assert c.fetch() is not None
        assert c.cmd('FAIL {"jid":"jid-disc-0001"}') == "OK"  # retry 0: dropped
        assert srv.info()["retries"] == srv.info()["dead"] == 0
        assert c.push("jid-disc-0002", custom=unique(100)) == NOT_UNIQUE
        srv.advance(100)
        assert c.push("jid-disc-0003", custom=unique(100)) == "OK"


def test_pushb_reports_each_duplicate_in_its_map(srv: EmbeddedServer) -> None:
    jobs = [
        {"jid": f"jid-bulk-{i:04d}", "jobtype": "T", "args": [i % 2], "custom": unique()}
        for i in range(4)
    ]
    with Raw(srv) as c:
        assert c.push("jid-holder-01", args=[1], custom=unique()) == "OK"
        reply = json.loads(c.cmd("PUSHB " + json.dumps(jobs)))
        assert reply == {
            "jid-bulk-0001": "NOTUNIQUE Job not unique",
            "jid-bulk-0002": "NOTUNIQUE Job not unique",  # a duplicate of 0000 in the batch
            "jid-bulk-0003": "NOTUNIQUE Job not unique",
        }
    assert srv.info()["queues"] == {"default": 2}


@pytest.mark.parametrize(
    ("custom", "error"),
    [
        ({"unique_for": 0}, "invalid unique_for: must be a number of seconds greater than 0"),
        ({"unique_for": -1.5}, "invalid unique_for: must be a number of seconds greater than 0"),
        ({"unique_for": "60"}, "invalid unique_for: must be a number of seconds greater than 0"),
        ({"unique_for": True}, "invalid unique_for: must be a number of seconds greater than 0"),
        ({"unique_for": [1]}, "invalid unique_for: must be a number of seconds greater than 0"),
        (
            {"unique_for": 60, "unique_until": "end"},
            'invalid unique_until: must be "success" or "start"',
        ),
        ({"unique_until": 1}, 'invalid unique_until: must be "success" or "start"'),
    ],
)
def test_bad_values_are_refused_and_nothing_is_stored(
    srv: EmbeddedServer, custom: dict[str, object], error: str
) -> None:
    with Raw(srv) as c:
        assert c.push("jid-bad-value1", custom=custom) == ErrorReply("ERR", error)
        reply = c.cmd(
            "PUSHB "
            + json.dumps([{"jid": "jid-bad-value2", "jobtype": "T", "args": [], "custom": custom}])
        )
        assert json.loads(reply) == {"jid-bad-value2": error}
        # Nothing stored, no lock taken: the same job with a good value is accepted.
        assert c.push("jid-good-value", custom=unique()) == "OK"
    assert srv.info()["queues"] == {"default": 1}
    assert list(locks(srv).values()) == ["jid-good-value"]


def test_null_values_are_absent(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        for i in range(2):
            assert (
                c.push(f"jid-null-000{i}", custom={"unique_for": None, "unique_until": None})
                == "OK"
            )
    assert locks(srv) == {}


def test_locks_survive_a_restart_and_expire_afterwards(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert c.push("jid-durable-01", custom=unique(60)) == "OK"
        assert c.push("jid-durable-02", args=[2], custom=unique(60)) == "OK"
        assert c.fetch() is not None
        ack(c, "jid-durable-01")  # its lock is gone, durably
    srv.stop()
    srv = make_server(storage="sqlite", data_dir=tmp_path, clock=clock)
    with Raw(srv) as c:
        assert c.push("jid-durable-03", custom=unique(60)) == "OK"
        assert c.push("jid-durable-04", args=[2], custom=unique(60)) == NOT_UNIQUE
        srv.advance(60)
        assert c.push("jid-durable-05", args=[2], custom=unique(60)) == "OK"
    stored = srv.call(lambda: srv.manager.storage.load().records.get(SPACE, {}))
    assert sorted(json.loads(v)[0] for v in stored.values()) == ["jid-durable-05"]


def test_flush_drops_the_locks(srv: EmbeddedServer) -> None:
    with Raw(srv) as c:
        assert c.push("jid-flushed-01", custom=unique()) == "OK"
        assert c.cmd("FLUSH") == "OK"
        assert c.push("jid-flushed-02", custom=unique()) == "OK"


@pytest.mark.slow
def test_locks_survive_kill_9(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as proc:
        with Raw("127.0.0.1", proc.port) as c:
            assert c.push("jid-kill9-0001", custom=unique(3600)) == "OK"
            assert c.push("jid-kill9-0002", args=[2], custom=unique(3600)) == "OK"
            assert c.fetch() is not None
            ack(c, "jid-kill9-0001")
        proc.kill9()
    with ServerProcess(tmp_path) as proc, Raw("127.0.0.1", proc.port) as c:
        assert c.push("jid-kill9-0003", args=[2], custom=unique(3600)) == NOT_UNIQUE
        assert c.push("jid-kill9-0004", custom=unique(3600)) == "OK"


def test_a_cron_tick_is_refused_while_the_previous_one_holds_the_lock(
    make_server: ServerFactory,
) -> None:
    # A minutely entry unique for 65 s: every other tick finds the previous job unprocessed.
    job = {"type": "Minutely", "custom": {"unique_for": 65}}
    srv = make_server(
        clock=ManualClock(T0), config={"cron": [{"schedule": "* * * * *", "job": job}]}
    )
    srv.advance(60)
    assert srv.info()["queues"] == {"default": 1}
    srv.advance(60)  # refused: the first job's lock ends at T0 + 125
    assert srv.info()["queues"] == {"default": 1}
    srv.advance(60)
    assert srv.info()["queues"] == {"default": 2}


def test_released_locks_do_not_pile_up_in_memory() -> None:
    # A long unique_for and many ACKs: the deadline heap keeps to about the live locks.
    from werk.server._config import ServerConfig
    from werk.server._features import standard_extensions
    from werk.server._manager import Manager
    from werk.server._storage import MemoryStorage

    m = Manager(MemoryStorage(), ManualClock(T0), extensions=standard_extensions(ServerConfig()))
    ext = next(e for e in m.hooks.all if isinstance(e, UniqueJobs))  # type: ignore[union-attr]
    for i in range(5000):
        job = {"jid": f"jid-pile-{i:05d}", "jobtype": "T", "args": [i], "custom": unique(86400)}
        assert m.push_bytes(json.dumps(job).encode()) is None
        res = m.fetch(["default"], "")
        assert res is not None and m.ack(res.jid)
    assert ext.locks == {}
    assert len(ext._deadlines) <= 1001

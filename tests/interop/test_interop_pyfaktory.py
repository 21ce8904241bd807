"""The PyPI ``pyfaktory`` client against werk's server: producer, consumer commands, BEAT
states from its heartbeat thread, PUSHB, INFO, QUEUE and MUTATE.

Its ``Consumer`` (a pebble process pool that owns the signal handlers) is not started here;
the test sends the same FETCH/ACK/FAIL calls that Consumer makes through the ``Client``.
Skipped when the package is not installed, unless WERK_REQUIRE_INTEROP=1.
"""

from __future__ import annotations

import traceback

import pytest
from tests.interop.helpers import dead, need, retries, signal_worker, wait_until, workers

from werk.server import EmbeddedServer

try:
    from pyfaktory import Client, Job, Producer
    from pyfaktory.models import JobFilter, MutateOperation
    from pyfaktory.util.enums import State
    from pyfaktory.util.exceptions import FaktroyWorkProtocolError
except ImportError:  # pragma: no cover - depends on the machine
    Client = None

WID = "pyfaktory-interop-wid"


@pytest.fixture(autouse=True)
def _client_installed() -> None:
    need(Client is not None, "the `pyfaktory` package (pip install pyfaktory)")


def test_push_fetch_ack_fail_beat_mutate(interop_server: EmbeddedServer) -> None:
    srv = interop_server
    url = srv.url_with_password
    client = Client(faktory_url=url, role="both", worker_id=WID, labels=["pyfaktory"])
    client.beat_period = 0.1  # its heartbeat thread BEATs this often
    client.connect()
    try:
        assert workers(srv)[WID]["labels"] == ["pyfaktory"]
        producer = Producer(client=client)
        # Its Job model always sends "at": "" (meaning now) and reserve_for/backtrace.
        assert producer.push(Job(jid="pyf-add-job", jobtype="add", args=[1, 2]))
        assert producer.push(Job(jid="pyf-boom-job", jobtype="boom", args=[], retry=1))
        rejected = producer.push_bulk(
            [
                Job(jid="pyf-bulk-job", jobtype="add", args=[3, 4], queue="low"),
                Job(jid="pyf-bulk-two", jobtype="add", args=[], reserve_for=60, queue="low"),
            ]
        )
        assert rejected == {}
        assert srv.info()["queues"] == {"default": 2, "low": 2}
        assert client.info()["faktory"]["queues"] == {"default": 2, "low": 2}

        assert client.queue_pause(queues=["low"])
        got = [client._fetch(["low", "default"])["jid"] for _ in range(2)]
        assert got == ["pyf-add-job", "pyf-boom-job"]  # the paused queue gives nothing
        assert client.queue_unpause(queues=["low"])
        assert client._ack("pyf-add-job")
        try:
            raise ValueError("boom: kaput")
        except ValueError as exc:
            backtrace = traceback.format_exception(exc)
        assert client._fail("pyf-boom-job", "ValueError", "boom: kaput", backtrace)
        info = srv.info()
        assert (info["processed"], info["failures"], info["retries"]) == (2, 1, 1)
        [failed] = retries(srv)
        assert failed["jid"] == "pyf-boom-job"
        assert failed["failure"]["errtype"] == "ValueError"
        assert failed["failure"]["backtrace"] == backtrace
        assert client._fetch(["low"])["jid"] in {"pyf-bulk-job", "pyf-bulk-two"}

        # The heartbeat thread sees quiet, then terminate, in its BEAT replies.
        signal_worker(srv, WID, "quiet")
        wait_until(lambda: client.state == State.QUIET, "pyfaktory to go quiet")
        with pytest.raises(FaktroyWorkProtocolError):
            client._fetch(["low"])  # a quiet client refuses to FETCH by itself
        signal_worker(srv, WID, "terminate")
        wait_until(lambda: client.state == State.TERMINATING, "pyfaktory to terminate")
        assert workers(srv)[WID]["state"] == "terminate"
    finally:
        client.disconnect()
    wait_until(lambda: WID not in workers(srv), "the closed worker connection to be forgotten")

    # A producer connection: MUTATE kills the failed job into the dead set.
    with Client(faktory_url=url) as admin:
        op = MutateOperation(
            cmd="kill",
            target="retries",
            filter=JobFilter(jids=["pyf-boom-job"], regexp=None, jobtype=None),
        )
        assert admin.mutate(op)
        assert admin.info()["faktory"]["sets"]["dead"] == 1
    assert [job["jid"] for job in dead(srv)] == ["pyf-boom-job"]
    # The fetched-but-unacknowledged job is still reserved, not lost.
    assert srv.info()["working"] == 1

"""``Extension.needs_job``: a job's payload is decoded for the reserved/acked hooks only
when some extension overriding them asks for it."""

from __future__ import annotations

from werk.server import ManualClock
from werk.server._extension import Extension
from werk.server._manager import Manager
from werk.server._payload import Payload
from werk.server._sets import Reservation
from werk.server._storage import MemoryStorage

JOB = b'{"jid":"jid-needs-0001","jobtype":"T","args":[],"custom":{"k":1}}'


class Seen(Extension):
    def __init__(self, needs_job: bool) -> None:
        self.needs_job = needs_job
        self.seen: list[tuple[str, object]] = []

    def reserved(self, res: Reservation, job: Payload | None) -> None:
        self.seen.append(("reserved", job and job["custom"]))

    def acked(self, res: Reservation, job: Payload | None) -> None:
        self.seen.append(("acked", job and job["custom"]))


def run(*extensions: Extension) -> None:
    m = Manager(MemoryStorage(), ManualClock(0), extensions=extensions)
    assert m.push_bytes(JOB) is None
    res = m.fetch(["default"], "w")
    assert res is not None and m.ack(res.jid)


def test_no_job_is_decoded_for_extensions_that_need_none() -> None:
    a, b = Seen(False), Seen(False)
    run(a, b)
    assert a.seen == b.seen == [("reserved", None), ("acked", None)]


def test_one_extension_that_needs_it_gets_it_decoded_once_for_all() -> None:
    lean, needy = Seen(False), Seen(True)
    run(lean, needy)
    assert needy.seen == [("reserved", {"k": 1}), ("acked", {"k": 1})]
    assert lean.seen == needy.seen  # decoded anyway: handed to everyone

"""The SQLite storage's journal: what was journaled survives a crash, exactly once.

Crashes are real: a child process changes state through a Manager, journals it and
kills itself with SIGKILL before any fold. The parent then checks the database file
alone holds nothing of it, and that reopening the storage brings everything back.
"""

from __future__ import annotations

import marshal
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from tests.servers import MANUAL_EPOCH

from werk.server._clock import ManualClock
from werk.server._manager import Manager
from werk.server._storage import QUEUE, SQLiteStorage
from werk.server._storage.journal import FORMAT_VERSION, Journal
from werk.server._storage.ops import (
    CLEAR_KIND,
    COUNTER,
    DELETE,
    FLUSH_ALL,
    INSERT,
    QUEUE_FORGET,
    QUEUE_KNOWN,
    RECORD_CLEAR,
    RECORD_DELETE,
    RECORD_PUT,
    JournalFormatError,
    decode_ops,
    encode_ops,
)

pytestmark = pytest.mark.slow

T0 = MANUAL_EPOCH

_CRASH = """
import os, signal, sys
from werk.server import _admin as admin
from werk.server._clock import ManualClock
from werk.server._manager import Manager
from werk.server._storage import SQLiteStorage
store = SQLiteStorage(sys.argv[1])
m = Manager(store, ManualClock(float(sys.argv[3])), rand30=lambda: 0)
exec(sys.argv[2])
store.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def crash_after(db: Path, code: str) -> None:
    """Run ``code`` (with ``m``, the Manager) in a child process, journal, then SIGKILL."""
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(db), code, str(T0)], timeout=30)
    assert proc.returncode == -signal.SIGKILL


def rows_in_database(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM entries").fetchone()[0])
    finally:
        con.close()


def push(jid: str, queue: str = "default") -> str:
    return f'm.push_bytes(b\'{{"jid":"{jid}","jobtype":"T","args":[],"queue":"{queue}"}}\')\n'


def test_pushes_acks_fails_reservations_and_pauses_come_back_from_the_journal(tmp_path):
    db = tmp_path / "werk.sqlite3"
    code = "".join(push(f"jid-jnl-{i:04d}") for i in range(6)) + push("jid-paused01", "pq")
    code += "admin.pause(m, 'pq')\n"
    code += "a = m.fetch(['default'], 'w1'); b = m.fetch(['default'], 'w1')\n"
    code += "c = m.fetch(['default'], 'w1')\n"
    code += "m.ack(a.jid)\n"
    code += "m.fail(b.jid, 'Boom', 'it broke', None)\n"
    crash_after(db, code)
    assert rows_in_database(db) == 0  # all of it lives in the journal only

    store = SQLiteStorage(db)
    m = Manager(store, ManualClock(T0))
    assert [item.jid for item in m.queues["default"]] == [f"jid-jnl-{i:04d}" for i in (3, 4, 5)]
    assert list(m.reservations) == ["jid-jnl-0002"]  # c: still reserved
    assert m.reservations["jid-jnl-0002"].wid == "w1"
    (retry,) = m.retries.entries.values()
    assert retry.jid == "jid-jnl-0001"
    assert m.paused == {"pq"} and len(m.queues["pq"]) == 1
    assert m.counters["processed"] == 2 and m.counters["failures"] == 1
    store.close()
    assert rows_in_database(db) == 6  # folded: 3 queued + 1 reserved + 1 retry + 1 paused


def test_a_torn_last_record_is_dropped_and_later_records_still_count(tmp_path):
    db = tmp_path / "werk.sqlite3"
    crash_after(db, push("jid-before-1") + "store.flush()\n" + push("jid-before-2"))
    journal = Path(str(db) + ".journal")
    good = journal.read_bytes()
    # A crash in the middle of a write: a record header promising more than is there.
    journal.write_bytes(good + b"\x40\x00\x00\x00\x01\x02\x03\x04" + b'{"half')

    store = SQLiteStorage(db)
    assert [e.jid for e in store.load().entries] == ["jid-before-1", "jid-before-2"]
    store.close()
    # A second crash after more work: the new record follows the good ones, not the tear.
    crash_after(db, push("jid-after-01"))
    store = SQLiteStorage(db)
    jids = [e.jid for e in store.load().entries]
    store.close()
    assert jids == ["jid-before-1", "jid-before-2", "jid-after-01"]


def test_a_journal_already_folded_is_not_applied_twice(tmp_path):
    db = tmp_path / "werk.sqlite3"
    crash_after(db, push("jid-once-0001") + "m.ack(m.fetch(['default'], '').jid)\n")
    journal = Path(str(db) + ".journal")
    saved = tmp_path / "saved.journal"
    shutil.copy(journal, saved)
    store = SQLiteStorage(db)  # folds the journal into the database
    store.close()
    # As if the server died after the fold's commit, before the journal was emptied.
    shutil.copy(saved, journal)
    store = SQLiteStorage(db)
    snap = store.load()
    store.close()
    assert snap.entries == []
    assert snap.counters["processed"] == 1  # not 2


def test_a_bad_checksum_ends_the_replay(tmp_path):
    path = str(tmp_path / "j")
    j = Journal(path)
    j.open(next_generation=7)
    for body in (b"one", b"two", b"three"):
        j.append(body)
    j.close()
    data = bytearray(Path(path).read_bytes())
    data[-1] ^= 0xFF  # "three" corrupted
    Path(path).write_bytes(bytes(data))
    j = Journal(path)
    assert j.open(next_generation=99) == (7, [b"one", b"two"])
    j.append(b"four")
    j.close()
    assert Journal(path).open(next_generation=99) == (7, [b"one", b"two", b"four"])


def test_an_empty_file_or_a_torn_header_starts_a_new_generation(tmp_path):
    path = tmp_path / "j"
    for data in (b"", b"WERKJN", b"WERKJNL2\x07\x00"):
        path.write_bytes(data)
        j = Journal(str(path))
        assert j.open(next_generation=3) == (3, [])
        j.close()
        assert Journal(str(path)).open(next_generation=5) == (3, [])


def test_a_foreign_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "j"
    for data in (b"not a journal at all", b"short"):
        path.write_bytes(data)
        with pytest.raises(JournalFormatError, match="not a werk journal"):
            Journal(str(path)).open(next_generation=3)
        assert path.read_bytes() == data


def _old_format(records: list[bytes]) -> bytes:
    """A journal as werk wrote it before format 2: same framing, marshal bodies."""
    data = b"WERKJNL1" + struct.pack("<Q", 4)
    for body in records:
        data += struct.pack("<II", len(body), zlib.crc32(body)) + body
    return data


@pytest.mark.parametrize("version", [b"1", b"4", b"x"])
def test_a_journal_of_another_format_with_changes_is_refused_not_dropped(tmp_path, version):
    db = tmp_path / "werk.sqlite3"
    SQLiteStorage(db).close()
    journal = Path(str(db) + ".journal")
    body = marshal.dumps([(0, (1, 0, "default", 0.0, "jid-old-00001", b"{}", 0.0))])
    data = _old_format([body]).replace(b"WERKJNL1", b"WERKJNL" + version)
    journal.write_bytes(data)
    with pytest.raises(JournalFormatError, match="format b'" + version.decode()):
        SQLiteStorage(db)
    assert journal.read_bytes() == data  # kept for the version that can read it
    # The refusal released the database: the storage opens once the journal is dealt with.
    journal.unlink()
    SQLiteStorage(db).close()


def test_an_old_format_journal_without_changes_is_started_afresh(tmp_path):
    db = tmp_path / "werk.sqlite3"
    crash_after(db, push("jid-kept-00001"))
    SQLiteStorage(db).close()  # folded; the journal is now a bare header
    journal = Path(str(db) + ".journal")
    journal.write_bytes(_old_format([]))  # what a clean shutdown of format 1 leaves
    store = SQLiteStorage(db)
    assert [e.jid for e in store.load().entries] == ["jid-kept-00001"]
    store.close()
    assert journal.read_bytes()[:8] == b"WERKJNL" + str(FORMAT_VERSION).encode()


def test_a_format_2_journal_left_by_a_crash_is_read_and_folded(tmp_path):
    # Format 3 only added codes: an older werk's unfolded changes mean the same.
    db = tmp_path / "werk.sqlite3"
    SQLiteStorage(db).close()
    journal = Path(str(db) + ".journal")
    reader = Journal(str(journal))
    generation = reader.open(next_generation=0)[0]  # the one the database expects next
    reader.close()
    body = encode_ops(
        [
            (INSERT, (1, QUEUE, "default", 0.0, "jid-v2-000001", b"{}", 0.0)),
            (COUNTER, ("processed", 2)),
        ]
    )
    data = b"WERKJNL2" + struct.pack("<Q", generation)
    journal.write_bytes(data + struct.pack("<II", len(body), zlib.crc32(body)) + body)
    store = SQLiteStorage(db)
    snap = store.load()
    assert [e.jid for e in snap.entries] == ["jid-v2-000001"] and snap.counters["processed"] == 2
    store.close()
    assert journal.read_bytes()[:8] == b"WERKJNL" + str(FORMAT_VERSION).encode()
    assert rows_in_database(db) == 1


def test_werk_server_refuses_a_journal_of_another_format_in_one_line(tmp_path):
    journal = tmp_path / "werk.sqlite3.journal"
    journal.write_bytes(_old_format([b"\x00" * 40]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "werk",
            "server",
            "--bind",
            "127.0.0.1:0",
            "--no-web",
            "--data",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr and "journal format" in proc.stderr
    assert "Traceback" not in proc.stderr


EVERY_OP = [
    (INSERT, (1, QUEUE, "default", 0.0, "jid-0000001", b'{"jid":"jid-0000001"}', 0.0)),
    (INSERT, (2**62, 4, "wid-\u00e9\ud800", -1.5e300, "", b"\x00\xff" * 3, 1_700_000_000.25)),
    (DELETE, (-(2**63),)),
    (QUEUE_KNOWN, ("q\u2603", 1)),
    (QUEUE_KNOWN, ("", 0)),
    (QUEUE_FORGET, ("gone",)),
    (CLEAR_KIND, (3,)),
    (COUNTER, ("processed", -7)),
    (FLUSH_ALL, ()),
    (RECORD_PUT, ("batch", "b-\u00e9\ud800", b"\x00{}")),
    (RECORD_PUT, ("", "", b"")),
    (RECORD_DELETE, ("unique", "k")),
    (RECORD_CLEAR, ("cron",)),
]


def test_the_record_encoding_round_trips_every_change_kind():
    assert {code for code, _ in EVERY_OP} == set(range(10))
    assert decode_ops(encode_ops(EVERY_OP)) == EVERY_OP
    assert decode_ops(encode_ops([])) == []
    # Pinned bytes: the format cannot drift without this test (and FORMAT_VERSION) changing.
    assert encode_ops([(COUNTER, ("p", 2)), (DELETE, (5,)), (FLUSH_ALL, ())]) == (
        b"\x05\x02\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00p"
        b"\x01\x05\x00\x00\x00\x00\x00\x00\x00\x06"
    )
    assert encode_ops([(RECORD_PUT, ("s", "k", b"v")), (RECORD_CLEAR, ("s",))]) == (
        b"\x07\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00skv\x09\x01\x00\x00\x00s"
    )


@pytest.mark.parametrize(
    "body",
    [b"\x63", b"\x00\x01", b"\x01\x05\x00", encode_ops(EVERY_OP)[:-2], b"\x03\x05\0\0\0ab"],
)
def test_a_record_that_is_not_changes_is_refused(body):
    with pytest.raises(JournalFormatError):
        decode_ops(body)


def test_every_change_kind_survives_a_crash(tmp_path):
    db = tmp_path / "werk.sqlite3"
    store = SQLiteStorage(db)
    store.queue_known("old", False)
    store.queue_push(1, "old", "jid-gone-00001", b"{}")
    store.close()
    code = (
        "store.queue_forget('old')\n"
        "store.queue_known('q\u2603', True)\n"
        "store.queue_push(10, 'q\u2603', 'jid-q-0000001', b'{\"a\":1}')\n"
        "store.entry_add(11, 3, 'dead', 2.5, 'jid-dead-00001', b'\\xff', 1.25)\n"
        "store.entry_add(12, 1, 'scheduled', 3.5, 'jid-sch-000001', b'{}', 0.0)\n"
        "store.clear_kind(1)\n"
        "store.entry_add(13, 2, 'retries', 4.5, 'jid-ret-000001', b'{}', 0.0)\n"
        "store.entry_remove(13)\n"
        "store.counter_add('failed', 3)\n"
        "store.record_put('batch', 'b-1', b'one')\n"
        "store.record_put('batch', 'b-1', b'two')\n"
        "store.record_put('batch', 'b-2', b'')\n"
        "store.record_put('lock', 'k', b'x')\n"
        "store.record_delete('batch', 'b-2')\n"
        "store.record_clear('lock')\n"
    )
    crash_after(db, code)
    store = SQLiteStorage(db)
    snap = store.load()
    store.close()
    assert [(e.id, e.kind, e.name, e.jid, e.payload, e.score, e.since) for e in snap.entries] == [
        (10, QUEUE, "q\u2603", "jid-q-0000001", b'{"a":1}', 0.0, 0.0),
        (11, 3, "dead", "jid-dead-00001", b"\xff", 2.5, 1.25),
    ]
    assert snap.queues == {"q\u2603": True}
    assert snap.counters == {"failed": 3}
    assert snap.records == {"batch": {"b-1": b"two"}}


def test_a_jid_with_a_lone_surrogate_escape_is_stored_and_folded(tmp_path):
    # Python would keep "\ud800" as a surrogate that SQLite cannot encode: every fold
    # (and every later start) failed on it.
    db = tmp_path / "werk.sqlite3"
    store = SQLiteStorage(db)
    m = Manager(store, ManualClock(T0))
    assert m.push_bytes(b'{"jid":"jid-\\ud800-0001","jobtype":"T","args":[]}') is None
    store.close()
    assert rows_in_database(db) == 1
    store = SQLiteStorage(db)
    assert [e.jid for e in store.load().entries] == ["jid-\ufffd-0001"]
    store.close()

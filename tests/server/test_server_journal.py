"""The SQLite storage's journal: what was journaled survives a crash, exactly once.

Crashes are real: a child process changes state through a Manager, journals it and
kills itself with SIGKILL before any fold. The parent then checks the database file
alone holds nothing of it, and that reopening the storage brings everything back.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from werk.server.clock import ManualClock
from werk.server.manager import Manager
from werk.server.storage import SQLiteStorage
from werk.server.storage.journal import Journal

pytestmark = pytest.mark.slow

T0 = 1_700_000_000.0

_CRASH = """
import os, signal, sys
from werk.server.clock import ManualClock
from werk.server.manager import Manager
from werk.server.storage import SQLiteStorage
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
    code += "m.pause('pq')\n"
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


def test_an_empty_or_foreign_file_starts_a_new_generation(tmp_path):
    path = tmp_path / "j"
    path.write_bytes(b"not a journal at all")
    j = Journal(str(path))
    assert j.open(next_generation=3) == (3, [])
    j.close()
    assert Journal(str(path)).open(next_generation=5) == (3, [])

"""The SQLite storage folds its journal in a background thread: the event loop is never
held up by a big fold, and a crash at any moment of a fold loses nothing and applies
nothing twice.

Crashes are real: a child process sets the journal aside, lets the fold thread get to
the chosen moment, journals more changes and kills itself with SIGKILL. (Folds of
ordinary changes run in place; a change that deletes a whole queue sends one to a
thread.)
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from werk.server import _admin as admin
from werk.server._clock import ManualClock
from werk.server._manager import Manager
from werk.server._storage import SQLiteStorage
from werk.server._storage.sqlite import FOLD_OPS

pytestmark = pytest.mark.slow

T0 = 1_700_000_000.0

# The fold thread stops at MOMENT ("written": changes written, not committed;
# "committed": committed, the aside file not yet deleted), then more changes are journaled
# and the process dies.
_CRASH_MID_FOLD = """
import asyncio, os, signal, sys, threading
from werk.server import _admin as admin
from werk.server._clock import ManualClock
from werk.server._manager import Manager
from werk.server._storage import SQLiteStorage
from werk.server._storage.sqlite import FOLD_OPS
from werk.server._storage.ops import write_ops

db, moment, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = SQLiteStorage(db)
m = Manager(store, ManualClock(t0), rand30=lambda: 0)
reached = threading.Event()

def write(ops, generation):
    store._db.execute("BEGIN")
    write_ops(store._db, ops)
    if moment == "committed":
        store._db.execute("INSERT INTO meta (key, value) VALUES ('journal_generation', ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (generation,))
        store._db.execute("COMMIT")
    reached.set()
    threading.Event().wait()  # the crash comes first

store._write = write
def push(jid):
    m.push_bytes(b'{"jid":"%s","jobtype":"T","args":[]}' % jid.encode())
for i in range(5):
    push(f"jid-before-{i}")
first = m.fetch(["default"], "w1")
m.ack(first.jid)
m.push_bytes(b'{"jid":"jid-removed","jobtype":"T","args":[],"queue":"gone"}')
admin.remove_queue(m, "gone")      # a change that deletes a whole queue: folded in a thread
store.flush()                      # journal generation 1: 6 pushes, a fetch, an ACK, a REMOVE
store.attach(asyncio.new_event_loop())
store._fold_soon()                 # set aside, fold thread started
assert reached.wait(10)
for i in range(3):
    push(f"jid-during-{i}")
second = m.fetch(["default"], "w1")
m.ack(second.jid)
store.flush()                      # generation 2, in the fresh journal
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("moment", ["written", "committed"])
def test_a_crash_mid_fold_loses_nothing_and_applies_nothing_twice(tmp_path: Path, moment: str):
    db = tmp_path / "werk.sqlite3"
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_MID_FOLD, str(db), moment, str(T0)], timeout=60
    )
    assert proc.returncode == -signal.SIGKILL
    assert Path(str(db) + ".journal.folding").exists()
    store = SQLiteStorage(db)
    m = Manager(store, ManualClock(T0))
    queued = [item.jid for item in m.queues["default"]]
    assert queued == [f"jid-before-{i}" for i in (2, 3, 4)] + [f"jid-during-{i}" for i in range(3)]
    assert m.counters["processed"] == 2  # one ACK per generation, each counted once
    assert not m.reservations and "gone" not in m.queues
    store.close()
    assert not Path(str(db) + ".journal.folding").exists()
    store = SQLiteStorage(db)
    assert len(store.load().entries) == 6 and store.load().counters["processed"] == 2
    store.close()


async def test_a_big_fold_runs_beside_the_event_loop(tmp_path: Path):
    # Deleting a queue of 200,000 jobs is one change that takes SQLite most of a second
    # to fold: the loop keeps turning meanwhile.
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    m = Manager(store, ManualClock(T0))
    for i in range(200_000):
        m.push_bytes(b'{"jid":"jid-%09d","jobtype":"T","args":["%s"]}' % (i, b"x" * 100))
    store.flush()
    store.fold()
    store.attach(asyncio.get_running_loop())
    admin.remove_queue(m, "default")
    store.flush()
    store._fold_soon()
    turns = 0
    started = time.perf_counter()
    while store._fold_thread is not None:
        await asyncio.sleep(0)
        turns += 1
    assert store.folds == 2 and store._folding is None
    # Hundreds of loop turns during the fold, not one long wait (a generous bound).
    assert turns > 100, (turns, time.perf_counter() - started)
    store.close()
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    assert store.load().entries == [] and store.load().queues == {}
    store.close()


async def test_an_ordinary_fold_runs_in_place(tmp_path: Path):
    # Inserts and deletes only: a fold of FOLD_OPS of them is milliseconds of work, cheaper
    # in place than in a thread that would take turns with the loop for the interpreter.
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    store.attach(asyncio.get_running_loop())
    m = Manager(store, ManualClock(T0))
    for i in range(FOLD_OPS):
        m.push_bytes(b'{"jid":"jid-%09d","jobtype":"T","args":[]}' % i)
    store.flush()
    assert store.folds == 1 and store._fold_thread is None
    assert not Path(str(tmp_path / "werk.sqlite3") + ".journal.folding").exists()
    store.close()

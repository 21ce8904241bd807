"""Extension records in the SQLite storage: a record written many times in one turn is
journaled once with its last value, and folding keeps the order of puts, deletes and
clears right (records are written apart from the job changes they interleave with)."""

from __future__ import annotations

from pathlib import Path

from werk.server._storage import SQLiteStorage
from werk.server._storage.ops import RECORD_PUT


def reopened(path: Path) -> dict[str, dict[str, bytes]]:
    store = SQLiteStorage(path)
    records = store.load().records
    store.close()
    return records


def test_a_record_rewritten_in_one_turn_is_journaled_once(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    for i in range(1000):  # no event loop: everything is one turn until flush()
        store.queue_push(i + 1, "default", f"jid-{i:08d}", b"{}")
        store.record_put("batch.n", "b-1", str(i).encode())
    pending = [op for op in store._pending if op[0] == RECORD_PUT]
    assert pending == [(RECORD_PUT, ("batch.n", "b-1", b"999"))]
    store.flush()
    store.record_put("batch.n", "b-1", b"1000")  # the next turn: a put of its own
    store.flush()
    store.close()
    assert reopened(tmp_path / "werk.sqlite3") == {"batch.n": {"b-1": b"1000"}}


def test_puts_deletes_and_clears_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "werk.sqlite3"
    store = SQLiteStorage(path)
    store.record_put("a", "gone", b"1")
    store.record_put("a", "back", b"1")
    store.record_delete("a", "back")
    store.record_put("a", "back", b"2")  # after its delete: stays
    store.record_delete("a", "gone")
    store.record_put("b", "cleared", b"1")
    store.record_clear("b")
    store.record_put("b", "after", b"1")  # after the clear: stays
    store.flush()
    store.record_put("c", "k", b"1")
    store.flush()
    store.record_clear("c")  # a later turn clears what an earlier one put
    store.record_put("a", "back", b"3")
    store.flush()
    store.fold()  # one fold over all three turns
    store.close()
    assert reopened(path) == {"a": {"back": b"3"}, "b": {"after": b"1"}}

"""A connection that has handled everything it read commits at once, the first of a
loop turn: a lone client's +OK waits for no further loop turn. The commands of other
connections in the same turn still share one journal write (group commit), and a reply
never goes out before its change is journaled."""

from __future__ import annotations

import asyncio
from pathlib import Path

from werk.server._storage import SQLiteStorage
from werk.server._storage.journal import Journal


async def test_the_first_early_commit_of_a_turn_is_at_once_the_rest_grouped(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    store.attach(asyncio.get_running_loop())
    done: list[str] = []
    store.queue_push(1, "default", "jid-00000001", b"{}")
    assert store.after_commit(lambda exc: done.append(f"a {exc}"))
    store.commit_early()  # connection a has read all it can
    assert done == ["a None"] and store.commits == 1
    # Connections b and c, read in the same loop turn: they share the next group commit.
    store.queue_push(2, "default", "jid-00000002", b"{}")
    assert store.after_commit(lambda exc: done.append(f"b {exc}"))
    store.commit_early()
    store.queue_push(3, "default", "jid-00000003", b"{}")
    assert store.after_commit(lambda exc: done.append(f"c {exc}"))
    store.commit_early()
    assert done == ["a None"] and store.commits == 1
    await asyncio.sleep(0)
    assert done == ["a None", "b None", "c None"] and store.commits == 2
    # The next turn's first connection commits at once again.
    store.queue_push(4, "default", "jid-00000004", b"{}")
    assert store.after_commit(lambda exc: done.append(f"d {exc}"))
    store.commit_early()
    assert done[-1] == "d None" and store.commits == 3
    store.close()


async def test_an_early_commit_answers_only_once_journaled(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    store.attach(asyncio.get_running_loop())
    seen: list[int] = []

    def answered(exc: BaseException | None) -> None:
        # What a restart would read back right now: the change is there already.
        journal = Journal(store.location + ".journal")
        _, records = journal.open(next_generation=1)
        journal.close()
        seen.append(len(records))

    store.queue_push(1, "default", "jid-00000001", b"{}")
    store.after_commit(answered)
    store.commit_early()
    assert seen == [1]
    store.close()


async def test_nothing_waiting_nothing_committed_early(tmp_path: Path):
    store = SQLiteStorage(tmp_path / "werk.sqlite3")
    store.attach(asyncio.get_running_loop())
    store.queue_push(1, "default", "jid-00000001", b"{}")  # no command waits on it
    store.commit_early()
    assert store.commits == 0
    await asyncio.sleep(0)
    assert store.commits == 1
    store.close()

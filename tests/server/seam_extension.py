"""A small server extension for the tests of the extension seams (not a feature of werk).

:class:`Recorder` uses every hook the way an Enterprise feature would, in miniature:

* refuses a job whose ``custom.refuse`` is set, as a unique lock does
  (``-NOTUNIQUE Job not unique``), or with a plain ``-ERR`` text when it is ``"plain"``;
* rewrites ``custom.expires_in`` into ``custom.expires_at`` at PUSH, and discards an
  expired job at FETCH (the same FETCH goes on to the next job);
* throttles the queue ``"narrow"`` to ``limit`` jobs in progress (skipped by FETCH while
  full, woken when a slot frees);
* counts every hook in durable records (space ``"seam"``), written in the same commit as
  the job change that caused them, and reads them back in ``load``;
* answers ``BATCH COUNTS`` (its counters, as JSON) and ``EXTEND <jid> <unix seconds>``
  (extends a reservation);
* reads ``limit`` from its own configuration table ``[seam]`` (``limit = N``, in any
  ``conf.d/*.toml``), refusing a bad value with the file and line.

``python -m tests.server.seam_extension --data DIR`` runs ``werk server`` with it (SQLite
storage, a free port), for the ``kill -9`` tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from werk._protocol.resp import encode_bulk, encode_error
from werk._protocol.timefmt import epoch_to_string, to_epoch
from werk.server._confd import Config
from werk.server._extension import (
    CommandClient,
    CommandHandler,
    Extension,
    KnownError,
    Records,
)
from werk.server._payload import Payload
from werk.server._sets import Reservation

SPACE = "seam"
NARROW = "narrow"


class Recorder(Extension):
    """See the module docstring."""

    config_tables = ("seam",)

    def __init__(self, limit: int = 1) -> None:
        self.counts: Counter[str] = Counter()
        self.limit = limit
        self.in_progress: set[str] = set()  # jids of "narrow" holding a slot
        self.events: list[str] = []  # hook names in order (not durable)
        self.ticks: list[float] = []
        self.more_ticks = 0  # how many more slices tick() asks for
        self.gone: list[tuple[str, bool]] = []

    # -- durable counting ------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.counts[name] += 1
        self.events.append(name)
        self.host.put_record(SPACE, name, str(self.counts[name]).encode())

    def load(self, records: Records) -> None:
        self.counts = Counter({k: int(v) for k, v in records.get(SPACE, {}).items()})
        self.in_progress = {
            jid for jid, res in self.host.reservations.items() if res.queue == NARROW
        }
        self.host.guard_queue(NARROW, self)

    def flushed(self) -> None:
        self.counts.clear()
        self.host.clear_records(SPACE)

    # -- configuration ---------------------------------------------------------------

    def read_config(self, config: Config) -> object:
        seam = config.table("seam")
        if seam is None:
            return self.limit
        seam.check_keys({"limit"}, required={"limit"})
        return seam.integer("limit", minimum=1)

    def use_config(self, config: object) -> None:
        assert isinstance(config, int)
        self.limit = config
        self.host.wake(NARROW)  # a raised limit lets waiting FETCHes in

    # -- PUSH ------------------------------------------------------------------------

    def check_push(self, job: Payload) -> str | None:
        custom = job["custom"]
        refuse = custom.get("refuse")
        if refuse == "plain":
            return "refused by the seam extension"
        if refuse:
            return KnownError("NOTUNIQUE", "Job not unique")
        expires_in = custom.get("expires_in")
        if expires_in is not None:
            if not isinstance(expires_in, int | float) or expires_in <= 0:
                return "invalid expires_in: must be a number of seconds greater than 0"
            custom["expires_at"] = epoch_to_string(self.host.clock.now() + expires_in)
        return None

    def pushed(self, job: Payload) -> None:
        self._count("pushed")

    # -- FETCH -----------------------------------------------------------------------

    def admit(self, queue: str, wid: str) -> bool:
        return len(self.in_progress) < self.limit

    def fetch(self, job: Payload, queue: str, wid: str) -> str | None:
        expires_at = job["custom"].get("expires_at")
        if expires_at and to_epoch(expires_at) <= self.host.clock.now():
            return "job expired"
        return None

    def discarded(self, job: Payload, reason: str) -> None:
        self._count("discarded")

    def reserved(self, res: Reservation, job: Payload | None) -> None:
        self._count("reserved")
        if res.queue == NARROW:
            self.in_progress.add(res.jid)

    # -- ACK / FAIL ------------------------------------------------------------------

    def acked(self, res: Reservation, job: Payload | None) -> None:
        self._count("acked")

    def failed(self, res: Reservation, job: Payload, outcome: str) -> None:
        assert job["failure"]["errtype"]  # updated before the hook
        self._count(f"failed:{outcome}")

    def released(self, res: Reservation, reason: str) -> None:
        self._count(f"released:{reason}")
        if res.jid in self.in_progress:
            self.in_progress.discard(res.jid)
            self.host.wake(NARROW)

    # -- elsewhere -------------------------------------------------------------------

    def tick(self, now: float) -> bool:
        self.ticks.append(now)
        self.host.put_record(SPACE, "last_tick", repr(now).encode())
        if self.more_ticks:
            self.more_ticks -= 1
            return True
        return False

    def worker_gone(self, wid: str, reaped: bool) -> None:
        self.gone.append((wid, reaped))

    def commands(self) -> Mapping[bytes, CommandHandler]:
        return {b"BATCH": self._batch, b"EXTEND": self._extend}

    def _batch(self, arg: bytes | None, client: CommandClient) -> bytes:
        if arg != b"COUNTS":
            return encode_error(f"no such BATCH subcommand: {(arg or b'').decode()}")
        return encode_bulk(json.dumps(dict(sorted(self.counts.items()))).encode())

    def _extend(self, arg: bytes | None, client: CommandClient) -> bytes:
        jid, _, until = (arg or b"").decode().partition(" ")
        moved = self.host.extend_reservation(jid, float(until))
        return b"+OK\r\n" if moved else encode_error(f"not extended {jid}")


def main() -> None:
    """``werk server`` with a :class:`Recorder`, SQLite storage in ``--data``."""
    from werk.cli._server import serve
    from werk.server._config import ServerConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--bind", default="127.0.0.1:0")
    parser.add_argument("--config-dir", type=Path, default=None)
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = ServerConfig(
        bind=opts.bind, storage="sqlite", data_dir=opts.data, config_dir=opts.config_dir
    )
    asyncio.run(serve(config, None, extensions=[Recorder()]))


if __name__ == "__main__":
    main()

"""``werk``'s server with the standard extensions on a shifted wall clock, for the cron
``kill -9`` tests: ``python -m tests.server.cron_process --data DIR --config-dir DIR
--clock-offset SECONDS`` (the clock reads ``time.time() + SECONDS``, so a test can put a
cron tick a few seconds ahead, or jump over ten of them between two runs)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from werk.server._config import ServerConfig
from werk.server._server import Server


class ShiftedClock:
    """The wall clock moved by ``offset`` seconds; it ticks like the real one."""

    manual = False

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


async def run(config: ServerConfig, offset: float) -> None:
    server = Server(config, clock=ShiftedClock(offset))
    await server.start()
    await server.serve_forever()  # until killed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--clock-offset", type=float, default=0.0)
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = ServerConfig(
        bind="127.0.0.1:0", storage="sqlite", data_dir=opts.data, config_dir=opts.config_dir
    )
    asyncio.run(run(config, opts.clock_offset))


if __name__ == "__main__":
    main()

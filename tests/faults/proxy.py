"""A TCP proxy that can cut every connection through it at once (a network fault on demand).

It listens on a free port of 127.0.0.1 and forwards each connection to the target; ``cut()``
aborts both sides of every open connection (the peers see a reset or EOF mid-conversation,
whatever was in flight is lost). New connections are accepted again at once, as after a
network blip. It runs on an event loop in a thread of its own.

Example::

    with CutProxy("127.0.0.1", srv.port) as proxy:
        worker_url = proxy.url
        ...
        assert proxy.cut() >= 1
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


class CutProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:port``; :meth:`cut` severs every connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.accepted = 0  # connections forwarded since the start
        self.cut_total = 0  # connections severed by cut()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._pairs: set[tuple[asyncio.WriteTransport, asyncio.WriteTransport]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """``tcp://127.0.0.1:<port>``: what a client gives instead of the server's URL."""
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> CutProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer.transport, up_writer.transport)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._pairs.discard(pair)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()  # one side gone: the other goes too

    def cut(self) -> int:
        """Sever every open connection now; how many there were."""

        async def sever() -> int:
            pairs = list(self._pairs)
            for client_side, server_side in pairs:
                client_side.abort()
                server_side.abort()
            self._pairs.clear()
            return len(pairs)

        n = self._call(sever())
        self.cut_total += n
        return n

    def open_connections(self) -> int:
        """Connections currently forwarded."""

        async def count() -> int:
            return len(self._pairs)

        return self._call(count())

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self.cut()
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> CutProxy:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

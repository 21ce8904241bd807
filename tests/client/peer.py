"""A scripted Faktory peer on a real socket, for replaying recorded conversations.

Each accepted connection follows a script: ``Send`` writes recorded server bytes, ``Expect``
reads one command line and checks it byte for byte (terminator included), ``ReadLine``
records a line whose content varies, ``Close`` hangs up, ``ExpectEOF`` waits for the
client to hang up. Everything the client sent is kept in ``peer.lines``. Failures inside
the peer thread are re-raised by ``peer.check()`` (called on context exit).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from werk._protocol.command_lines import LineReader


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Expect:
    line: bytes  # with its terminator, exactly as the client must send it


@dataclass(frozen=True)
class ReadLine:
    check: Callable[[bytes], object] | None = None


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class ExpectEOF:
    timeout: float = 5.0


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Respond:
    """Answer every command until EOF with ``reply(line)`` (None: no reply)."""

    reply: Callable[[bytes], bytes | None]


Step = Send | Expect | ReadLine | Close | ExpectEOF | Sleep | Respond


class _Stream:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = LineReader()
        self.fed = 0

    def line(self, timeout: float = 5.0) -> bytes | None:
        """The next raw line with its terminator, or None at EOF."""
        self.sock.settimeout(timeout)
        while True:
            before = self.fed - self.reader.buffered
            line = self.reader.next_line()
            if line is not None:
                consumed = (self.fed - self.reader.buffered) - before
                return line + (b"\r\n" if consumed - len(line) == 2 else b"\n")
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.fed += len(data)
            self.reader.feed(data)


class ScriptedPeer:
    """Serve ``scripts[i]`` to the i-th connection, then stop accepting.

    Example::

        with ScriptedPeer([[Send(b'+HI {"v":2}\\r\\n'), ReadLine(), Send(b"+OK\\r\\n")]]) as peer:
            Client(peer.url).connect()
    """

    def __init__(self, scripts: Sequence[Sequence[Step]], *, wrap: Callable | None = None) -> None:
        self.scripts = [list(s) for s in scripts]
        self.lines: list[list[bytes]] = [[] for _ in scripts]
        self.errors: list[BaseException] = []
        self.accepted = 0
        self._wrap = wrap
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _run(self) -> None:
        # Connections are accepted in order and each is served on a thread of its own, so
        # a script that stalls does not hold up the client's next connection.
        self._listener.settimeout(10)
        workers: list[threading.Thread] = []
        try:
            for index, script in enumerate(self.scripts):
                sock, _ = self._listener.accept()
                self.accepted += 1
                worker = threading.Thread(
                    target=self._serve_guarded, args=(index, sock, script), daemon=True
                )
                worker.start()
                workers.append(worker)
        except BaseException as exc:  # reported by check()
            self.errors.append(exc)
        finally:
            self._listener.close()
            for worker in workers:
                worker.join(30)

    def _serve_guarded(self, index: int, sock: socket.socket, script: list[Step]) -> None:
        try:
            if self._wrap is not None:
                sock = self._wrap(sock)
            self._serve(index, sock, script)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            sock.close()

    def _serve(self, index: int, sock: socket.socket, script: list[Step]) -> None:
        stream = _Stream(sock)
        for step in script:
            if isinstance(step, Send):
                sock.sendall(step.data)
            elif isinstance(step, Expect):
                got = stream.line()
                if got is not None:
                    self.lines[index].append(got)
                assert got == step.line, f"connection {index}: expected {step.line!r}, got {got!r}"
            elif isinstance(step, ReadLine):
                got = stream.line()
                assert got is not None, f"connection {index}: EOF where a command was due"
                self.lines[index].append(got)
                if step.check is not None:
                    step.check(got)
            elif isinstance(step, Close):
                return
            elif isinstance(step, ExpectEOF):
                got = stream.line(step.timeout)
                if got is not None:
                    self.lines[index].append(got)
                assert got is None, f"connection {index}: expected EOF, got {got!r}"
            elif isinstance(step, Sleep):
                time.sleep(step.seconds)
            elif isinstance(step, Respond):
                while (got := stream.line(30)) is not None:
                    self.lines[index].append(got)
                    answer = step.reply(got)
                    if answer is not None:
                        sock.sendall(answer)

    def check(self, timeout: float = 10.0) -> None:
        """Wait for the script to finish and re-raise what went wrong in the peer."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("scripted peer did not finish its script")
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> ScriptedPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.check()
        else:
            self._thread.join(2)

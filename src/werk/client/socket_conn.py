"""The blocking client's connection: a greeted socket, its timeouts and its reply reader.

:class:`werk.Client` owns at most one :class:`Connection` and does every read through it.
Kept apart from the client so that the client module holds the commands and this one the
socket details (kernel timeouts on Linux, one reused receive buffer).

Example::

    conn = Connection(sock, timeout=5.0, kernel_timeouts=KERNEL_TIMEOUTS)
    conn.sock.sendall(b"INFO\r\n")
    reply = conn.read_reply()
"""

from __future__ import annotations

import socket
import struct
import sys

from werk.errors import ConnectionClosedError, NetworkError, NetworkTimeout
from werk.protocol.resp import NEED_DATA, Reply, ReplyReader

__all__ = ["KERNEL_TIMEOUTS", "Connection", "os_error", "timeval"]

_RECV_SIZE = 65536
# On Linux a blocking socket with SO_RCVTIMEO/SO_SNDTIMEO lets the kernel enforce the
# timeouts: recv() is then one system call, where a Python-level socket timeout adds a
# poll() before every recv(). TLS sockets keep Python timeouts (ssl needs them).
KERNEL_TIMEOUTS = sys.platform.startswith("linux")


def timeval(seconds: float) -> bytes:
    """``seconds`` as the ``struct timeval`` that SO_RCVTIMEO/SO_SNDTIMEO take."""
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


def os_error(exc: OSError, doing: str, timeout: float) -> NetworkError:
    """The werk NetworkError for an OSError met while ``doing`` something."""
    if isinstance(exc, (TimeoutError, BlockingIOError)):
        return NetworkTimeout(f"{doing}: no answer within {timeout:g} s")
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return ConnectionClosedError(f"{doing}: connection lost ({exc})")
    return NetworkError(f"{doing}: {exc}")


class Connection:
    """A connected, greeted socket and its reply reader."""

    __slots__ = ("buffer", "kernel_timeouts", "read_timeout", "reader", "sock", "view")

    def __init__(self, sock: socket.socket, timeout: float, kernel_timeouts: bool) -> None:
        self.sock = sock
        self.reader = ReplyReader()
        # recv_into one reused buffer: recv(65536) would malloc and shrink 64 KiB per reply.
        self.buffer = bytearray(_RECV_SIZE)
        self.view = memoryview(self.buffer)
        self.kernel_timeouts = kernel_timeouts
        self.read_timeout = -1.0
        if kernel_timeouts:
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(timeout))
        self.set_read_timeout(timeout)

    def set_read_timeout(self, seconds: float) -> None:
        """Allow ``seconds`` for each reply from now on."""
        if self.kernel_timeouts:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(seconds))
        else:
            self.sock.settimeout(seconds)
        self.read_timeout = seconds

    def read_reply(self) -> Reply:
        """The next complete reply (raises ConnectionClosedError at EOF)."""
        reader = self.reader
        reply = reader.next_reply() if reader.buffered else NEED_DATA
        while reply is NEED_DATA:
            size = self.sock.recv_into(self.buffer)
            if not size:
                raise ConnectionClosedError("the server closed the connection")
            reply = reader.feed_and_read(self.view[:size])
        return reply  # type: ignore[return-value]

"""The blocking client's byte pump: a socket, its timeouts, and the session it feeds.

:class:`werk.Client` owns at most one :class:`SocketIO`. It opens the connection, writes
lines and hands what ``recv`` returns to the connection's
:class:`~werk._protocol.session.ClientSession`, which says what the bytes mean. Kept apart
from the client so that the client module holds the commands and this one the socket
details (kernel timeouts on Linux, one reused receive buffer, TLS).
"""

from __future__ import annotations

import errno
import socket
import ssl
import struct
import sys
from typing import Any

from werk._errors import ConnectError, ConnectionClosedError, FaktoryError, NetworkError
from werk._protocol.resp import NEED_DATA, Reply
from werk._protocol.session import ClientSession, timed_out
from werk.client._settings import ClientSettings

__all__ = ["KERNEL_TIMEOUTS", "SocketIO", "os_error"]

_RECV_SIZE = 65536
# On Linux a blocking socket with SO_RCVTIMEO/SO_SNDTIMEO lets the kernel enforce the
# timeouts: recv() is then one system call, where a Python-level socket timeout adds a
# poll() before every recv(). TLS sockets keep Python timeouts (ssl needs them).
KERNEL_TIMEOUTS = sys.platform.startswith("linux")


def _timeval(seconds: float) -> bytes:
    # ``seconds`` as the ``struct timeval`` that SO_RCVTIMEO/SO_SNDTIMEO take.
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


def os_error(exc: OSError, doing: str, timeout: float) -> NetworkError:
    """The werk NetworkError for an OSError met while ``doing`` something."""
    if isinstance(exc, (TimeoutError, BlockingIOError)):
        return timed_out(doing, timeout)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return ConnectionClosedError(f"{doing}: connection lost ({exc})")
    if exc.errno == errno.EBADF:  # our socket was closed under the call (abort())
        return ConnectionClosedError(f"{doing}: the connection was closed")
    return NetworkError(f"{doing}: {exc}")


class SocketIO:
    """A connected, greeted socket and the session of its conversation."""

    __slots__ = ("buffer", "kernel_timeouts", "patience", "session", "sock", "timeout", "view")

    def __init__(
        self,
        sock: socket.socket,
        session: ClientSession[Any],
        timeout: float,
        kernel: bool,
        patience: float = 0.0,
    ) -> None:
        self.sock = sock
        self.session = session
        # recv_into one reused buffer: recv(65536) would malloc and shrink 64 KiB per reply.
        self.buffer = bytearray(_RECV_SIZE)
        self.view = memoryview(self.buffer)
        self.kernel_timeouts = kernel
        self.timeout = timeout
        self.patience = patience
        if kernel:
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeout))
        self.set_read_timeout(timeout)

    @classmethod
    def open(cls, settings: ClientSettings) -> SocketIO:
        """Connect, maybe TLS, and say HELLO; raises ConnectError (nothing was sent) or the
        handshake's error."""
        s = settings
        ep = s.endpoint
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=s.connect_timeout)
        except OSError as exc:
            raise ConnectError(
                str(os_error(exc, f"connecting to {ep}", s.connect_timeout))
            ) from exc
        stage = "the TLS handshake with" if s.ssl_context else "the handshake with"
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if s.ssl_context is not None:
                sock = s.ssl_context.wrap_socket(sock, server_hostname=ep.host)
            stage = "the handshake with"
            io = cls(
                sock,
                s.session(),
                s.timeout,
                KERNEL_TIMEOUTS and s.ssl_context is None,
                s.fetch_timeout - s.timeout,
            )
            session = io.session
            session.expect(None)
            sock.sendall(session.send(session.hello(io.reply()), None))
            session.welcome(io.reply())
        except ssl.SSLError as exc:
            sock.close()
            raise ConnectError(f"{stage} {ep} failed: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise os_error(exc, f"{stage} {ep}", s.timeout) from exc
        except FaktoryError:
            sock.close()
            raise
        return io

    def set_read_timeout(self, seconds: float) -> None:
        """Allow ``seconds`` for each read from now on."""
        if self.kernel_timeouts:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
        else:
            self.sock.settimeout(seconds)

    def reply(self, blocking: bool = False) -> Reply:
        """The next reply (the session raises when none will come). ``blocking``: the
        command may keep the server busy ``patience`` seconds longer than ``timeout``."""
        session = self.session
        item = session.next_reply() if session.buffered or session.error else NEED_DATA
        while item is NEED_DATA:
            try:
                size = self.sock.recv_into(self.buffer)
            except (TimeoutError, BlockingIOError):
                # The read timeout stays ``timeout`` for every command (changing it per
                # command costs a system call each time); a FETCH that outlasts it is
                # given ``patience`` more once, so it waits ``timeout + patience`` in all.
                if not blocking or not self.patience:
                    raise
                blocking = False
                size = self._recv_patiently()
            if not size:
                raise session.hung_up()
            item = session.feed_and_read(self.view[:size])
        return item[1]  # type: ignore[index]

    def _recv_patiently(self) -> int:
        self.set_read_timeout(self.patience)
        try:
            return self.sock.recv_into(self.buffer)
        finally:
            self.set_read_timeout(self.timeout)

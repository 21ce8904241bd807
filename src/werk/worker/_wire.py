"""One fetch slot's connection as the process executor's I/O thread drives it.

The I/O thread multiplexes every slot's connection (and every child's pipe) with a
selector, so a slot's write and its replies are split: :meth:`Wire.send` writes a
:class:`~werk.worker._slot.Send`'s lines, :meth:`Wire.readable` reads what the server
sent and says when every reply is in. Both use the connection that the slot's
:class:`~werk.Client` opened and greeted (its socket and sans-I/O session), so replies are
parsed, and failures reported, exactly as ``Client.execute_many`` would. What a plain socket
cannot do here (connecting, greeting, TLS, whose reads may be buffered where a selector
cannot see them) is done by ``Client.execute_many`` itself on a helper thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import select
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from contextvars import Context
from itertools import repeat
from typing import Any

from werk._errors import NetworkError, RemoteProtocolError
from werk._protocol.replies import Request, raw
from werk._protocol.resp import NEED_DATA, Reply
from werk.client import Client
from werk.client._socket_io import SocketIO
from werk.worker._run import JobRun
from werk.worker._slot import Send, Slot

__all__ = ["Poller", "Wire", "blocking_send"]

_monotonic = time.monotonic
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_OK = b"+OK\r\n"


class Poller:
    """Which of the registered files are readable: epoll itself where there is one (the
    selectors module would add a call and a key tuple per event, two events a job), another
    selector elsewhere on POSIX, else :func:`multiprocessing.connection.wait` (Windows,
    where a selector only takes sockets)."""

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = (
            selectors.DefaultSelector() if self._epoll is None and os.name == "posix" else None
        )
        self._data: dict[Any, Any] = {}  # epoll: fd -> data; else file -> data
        self._fds: dict[Any, int] = {}  # epoll: file -> its fd when registered

    def register(self, fileobj: Any, data: Any) -> None:
        if self._epoll is not None:
            fd = fileobj.fileno()
            self._epoll.register(fd, select.EPOLLIN)
            self._fds[fileobj] = fd
            self._data[fd] = data
        elif self._selector is not None:
            self._selector.register(fileobj, selectors.EVENT_READ, data)
        else:
            self._data[fileobj] = data

    def unregister(self, fileobj: Any) -> None:
        """Forget ``fileobj`` (nothing if it was not registered)."""
        if self._epoll is not None:
            fd = self._fds.pop(fileobj, None)
            if fd is not None:
                del self._data[fd]
                with contextlib.suppress(OSError, ValueError):  # (closed already)
                    self._epoll.unregister(fd)
        elif self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fileobj)
        else:
            self._data.pop(fileobj, None)

    def select(self, timeout: float) -> list[Any]:
        """The data of each readable file, after at most ``timeout`` seconds."""
        data = self._data
        if self._epoll is not None:
            # (A list made at once: a handler may unregister a file whose event is still to
            # be handled, and a new file may then get its fd.)
            return [data[fd] for fd, _ in self._epoll.poll(timeout)]
        if self._selector is not None:
            return [key.data for key, _ in self._selector.select(timeout)]
        return [data[f] for f in multiprocessing.connection.wait(list(data), timeout)]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        elif self._selector is not None:
            self._selector.close()
        self._data.clear()
        self._fds.clear()


class Wire:
    """Slot ``index``: its state machine, its client, and the I/O in flight on it.

    ``sock`` is the socket the selector watches for it (None: none, e.g. while a helper
    thread uses the client); ``want`` how many replies the write in flight still awaits,
    ``deadline`` (monotonic) when they are late. ``run``/``context`` are the job it runs in
    a child (the middleware runs in ``context``, one per job: the jobs of every slot take
    turns on one thread), ``paused`` when its pause ends, ``done`` once it stopped.
    """

    __slots__ = (
        "blocking",
        "client",
        "context",
        "deadline",
        "done",
        "index",
        "link",
        "paused",
        "poller",
        "replies",
        "run",
        "slot",
        "sock",
        "started",
        "want",
    )

    def __init__(self, index: int, slot: Slot, client: Client) -> None:
        self.index = index
        self.slot = slot
        self.client = client
        self.link: SocketIO | None = None
        self.sock: socket.socket | None = None
        self.poller: Poller | None = None
        self.want = 0
        self.replies: list[Reply] = []
        self.deadline = 0.0
        self.blocking = False
        self.started = 0.0
        self.run: JobRun | None = None
        self.context: Context | None = None
        self.paused: float | None = None
        self.done = False

    def watch(self, poller: Poller, link: SocketIO, data: Any) -> None:
        """Have ``poller`` watch ``link``'s socket for this wire (instead of any other)."""
        self.unwatch(poller)
        poller.register(link.sock, data)
        self.poller = poller
        self.sock = link.sock
        self.link = link

    def unwatch(self, poller: Poller | None = None) -> None:
        """Stop watching the socket (before it may be closed: a selector needs it open)."""
        sock, self.sock, self.link = self.sock, None, None
        poller = poller or self.poller
        if sock is not None and poller is not None:
            poller.unregister(sock)

    def drop(self) -> None:
        """Close the client's connection (the next Send reconnects, on a helper thread)."""
        self.unwatch()
        self.client._drop()

    def plain(self) -> SocketIO | None:
        """The client's connection if this thread can drive it (open, not TLS)."""
        link: SocketIO | None = self.client._link
        if link is None or isinstance(link.sock, ssl.SSLSocket):
            return None
        return link

    def send(self, action: Send, timed: bool) -> BaseException | None:
        """Write the lines on the open connection ``self.link``; the error if that failed
        (the connection is then dropped)."""
        link = self.link
        assert link is not None
        n = len(action.lines)
        self.want = n
        self.replies = []
        self.blocking = blocking = action.blocking
        settings = self.client.settings
        now = _monotonic()
        if timed:
            self.started = now
        self.deadline = now + (settings.fetch_timeout if blocking else settings.timeout)
        try:
            link.sock.sendall(link.session.send_many(action.lines, repeat(None, n)))
        except OSError as exc:
            return self.lost(exc)
        return None

    def readable(self) -> list[Reply] | BaseException | None:
        """Read what arrived: every reply of the write in flight, an error (the connection
        is then dropped), or None (more to come, or nothing was awaited)."""
        link = self.link
        if link is None:  # (an event for a socket dropped earlier in the same batch)
            return None
        try:
            # Never blocking whatever the socket's mode, as the event may be stale (where
            # there is MSG_DONTWAIT: not on Windows).
            size = link.sock.recv_into(link.buffer, 0, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            return self.lost(exc)
        session = link.session
        try:
            if not size:
                raise session.hung_up()
            if not self.want:
                # Nothing is awaited: the server is saying goodbye (or breaking the protocol).
                raise RemoteProtocolError(f"{session.where} sent bytes nobody asked for")
            replies = self.replies
            data = link.view[:size]
            if size > 5 and self.want - len(replies) > 1 and data[:5] == _OK:
                # The usual reply to ACK + FETCH, +OK then the job, fed as two parts: the
                # reader takes each whole, without buffering it (bytes cut anywhere are read
                # alike).
                item = session.feed_and_read(data[:5])
                if item is not NEED_DATA:
                    replies.append(item[1])  # type: ignore[index]
                data = data[5:]
            item = session.feed_and_read(data)
            while item is not NEED_DATA:
                replies.append(item[1])  # type: ignore[index]
                if len(replies) == self.want:
                    break
                item = session.next_reply()
        except NetworkError as exc:
            return self.lost(exc)
        except RemoteProtocolError as exc:
            self.drop()
            return exc
        if len(replies) < self.want:
            return None
        self.want = 0
        if session.error is not None:
            self.drop()  # the server hangs up after the last reply
        return replies

    def late(self) -> BaseException:
        """The replies did not come in time: the connection is given up."""
        return self.lost(TimeoutError("timed out"))

    def lost(self, exc: OSError | NetworkError) -> BaseException:
        # As the client reports a broken connection: dropped, annotated (was it sent?).
        self.want = 0
        self.unwatch()
        lost: BaseException = self.client._lost(exc, Request(b"", raw, blocking=self.blocking))
        return lost


def blocking_send(
    wire: Wire,
    action: Send,
    fetched: Callable[[float, bool], None] | None,
    post: Callable[[Wire, Any], None],
) -> None:
    """On a helper thread: the whole Send through ``Client.execute_many`` (which connects
    first if need be); its replies, or its error, are posted back to the I/O thread."""
    timed = fetched if action.blocking else None
    started = _monotonic()
    try:
        replies = wire.client.execute_many(action.lines, blocking=action.blocking)
    except Exception as exc:
        post(wire, exc)
        return
    if timed is not None:
        timed(_monotonic() - started, replies[-1] is not None)
    post(wire, replies)

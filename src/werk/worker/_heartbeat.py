"""The heartbeat: a BEAT every 15 s on a connection of its own, with state and real RSS.

The reply tells the worker when the server (its web UI) wants it quiet or terminated. A
``-ERR unknown worker`` reply (the server forgot us: it restarted, or reaped us after a long
pause) is matched case-insensitively: the heartbeat reconnects, which registers the wid
again with a fresh HELLO, and re-sends the local state at once.
"""

from __future__ import annotations

import logging
import resource
import sys
import threading
from collections.abc import Callable

from werk._errors import FaktoryError, ServerError, ShutdownInProgressError, UnknownWorkerError
from werk.client import BeatState, Client
from werk.worker._backoff import Backoff, Outage, reconnectable

__all__ = ["Heartbeat", "rss_kb"]

log = logging.getLogger("werk.worker.heartbeat")


def rss_kb(status_path: str = "/proc/self/status") -> int | None:
    """This process's resident set size in KiB (current, not peak), or ``None`` if unknown.

    On Linux it is the ``VmRSS`` line of ``/proc/self/status`` (``VmRSS:\\t   48812 kB``,
    the value padded with spaces); elsewhere the peak RSS from ``getrusage``.
    """
    try:
        with open(status_path, "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    fields = line.split()
                    value = int(fields[1])
                    unit = fields[2].lower() if len(fields) > 2 else b"kb"
                    return value * 1024 if unit == b"mb" else value
    except (OSError, ValueError, IndexError):
        pass
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (OSError, ValueError):  # pragma: no cover
        return None
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes


class Heartbeat:
    """Beats every ``interval`` seconds on ``client`` (a worker's, with its wid) until
    :meth:`stop`; ``beat_now`` for an early one.

    ``state()`` gives the local state to report (``None`` while running, ``"quiet"`` or
    ``"terminate"``); ``on_reply(state)`` receives ``"quiet"`` or ``"terminate"`` when the
    server asks for it.
    """

    def __init__(
        self,
        client: Client,
        *,
        state: Callable[[], BeatState | None],
        on_reply: Callable[[BeatState], None],
        interval: float = 15.0,
        outage: Outage | None = None,
    ) -> None:
        self.interval = interval
        self._client = client
        self._state = state
        self._on_reply = on_reply
        self._outage = outage or Outage(str(client.settings.endpoint), log)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0

    def start(self) -> None:
        """Start the heartbeat thread (the first BEAT goes out after one interval)."""
        self._thread = threading.Thread(target=self._run, name="werk-heartbeat", daemon=True)
        self._thread.start()

    def beat_now(self) -> None:
        """Send the next BEAT now instead of at the end of the interval."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating and close the connection (with END)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._client.close()

    def _run(self) -> None:
        backoff = Backoff(base=0.5, cap=min(10.0, max(self.interval, 0.5)))
        delay = self.interval
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.beat_once():
                backoff.reset()
                delay = self.interval
            else:
                delay = backoff.next_delay()

    def beat_once(self) -> bool:
        """Send one BEAT and act on its reply; False if it must be retried soon."""
        try:
            reply = self._beat()
        except UnknownWorkerError as exc:
            # Case-insensitive by construction (werk._errors matches "unknown worker" in any
            # case). Reconnect: the new HELLO registers us again; then tell our state.
            log.warning("server does not know this worker (%s); registering again", exc)
            self._client.close()
            try:
                reply = self._beat()
            except FaktoryError as exc2:
                log.warning("heartbeat failed after re-registering: %s", exc2)
                return False
        except ShutdownInProgressError as exc:
            self._outage.failed(exc)  # the server hung up: reconnect with back-off
            return False
        except ServerError as exc:
            log.warning("heartbeat refused: %s", exc)
            return True  # not a connection problem: try again next interval
        except Exception as exc:
            if not reconnectable(exc):
                log.exception("heartbeat failed")
                return False
            self._outage.failed(exc)
            return False
        self._outage.recovered()
        self.beats += 1
        if reply is not None:
            self._on_reply(reply)
        return True

    def _beat(self) -> BeatState | None:
        return self._client.beat(self._state(), rss_kb())

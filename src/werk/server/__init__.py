"""werk's embedded Faktory-compatible server, for your tests, demos and scripts.

* :class:`EmbeddedServer`: a server in a background thread (or on your asyncio loop),
  on a free port, memory or SQLite storage.
* :class:`ManualClock`: time that stands still until a test moves it
  (``EmbeddedServer(clock=ManualClock(...))``, then ``srv.advance(seconds)``);
  :class:`Clock` is what any injected clock provides.

``werk server`` runs the same server from the command line; the pytest fixtures of
:mod:`werk.testing` start one per test. Everything else under ``werk.server`` is
internal.

Example::

    from werk.server import EmbeddedServer

    with EmbeddedServer() as srv:
        os.environ["FAKTORY_URL"] = srv.url
        ...
"""

from werk.server._clock import Clock, ManualClock
from werk.server._embedded import EmbeddedServer

__all__ = ["Clock", "EmbeddedServer", "ManualClock"]

# Users meet these as werk.server.<Name>: tracebacks and reprs say so.
for _cls in (Clock, EmbeddedServer, ManualClock):
    _cls.__module__ = __name__
del _cls

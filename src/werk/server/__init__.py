"""werk's embedded Faktory-compatible server.

* :class:`EmbeddedServer`: a server in a background thread (or on your asyncio loop)
  for tests, demos and scripts.
* :class:`Server` + :class:`ServerConfig`: what ``werk server`` runs.
* :class:`Manager`: the semantics, without sockets; :class:`ManualClock` drives time.

Example::

    from werk.server import EmbeddedServer

    with EmbeddedServer() as srv:
        os.environ["FAKTORY_URL"] = srv.url
        ...
"""

from werk.server.clock import Clock, ManualClock, SystemClock
from werk.server.config import ServerConfig, default_data_dir
from werk.server.embedded import EmbeddedServer
from werk.server.manager import Manager
from werk.server.server import Server

__all__ = [
    "Clock",
    "EmbeddedServer",
    "Manager",
    "ManualClock",
    "Server",
    "ServerConfig",
    "SystemClock",
    "default_data_dir",
]

"""The Faktory work protocol as pure code over bytes: no sockets, no event loop.

* :mod:`~werk.protocol.resp`: RESP replies, read (client) and written (server).
* :mod:`~werk.protocol.lines`: command lines, read (server).
* :mod:`~werk.protocol.commands`: command lines, written (client).
* :mod:`~werk.protocol.handshake`: HI / HELLO and the password hash, both roles.
* :mod:`~werk.protocol.jsonc` and :mod:`~werk.protocol.timefmt`: JSON and timestamps as
  the wire wants them.

The sync client, the asyncio client and the embedded server all sit on this package.
"""

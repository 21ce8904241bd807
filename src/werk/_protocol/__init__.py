"""The Faktory work protocol as pure code over bytes: no sockets, no event loop.

* :mod:`~werk._protocol.resp`: RESP replies, read (client) and written (server).
* :mod:`~werk._protocol.command_lines`: command lines, read (server).
* :mod:`~werk._protocol.command_lines`: command lines, written (client).
* :mod:`~werk._protocol.handshake`: HI / HELLO and the password hash, both roles.
* :mod:`~werk._protocol.jsonc` and :mod:`~werk._protocol.timefmt`: JSON and timestamps as
  the wire wants them.

The sync client, the asyncio client and the embedded server all sit on this package.
"""

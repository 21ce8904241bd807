"""The Faktory work protocol as pure code over bytes: no sockets, no event loop.

* :mod:`~werk._protocol.resp`: RESP replies, read (client) and written (server).
* :mod:`~werk._protocol.command_lines`: command lines, written (client) and read (server).
* :mod:`~werk._protocol.buffer`: the receive buffer under both readers.
* :mod:`~werk._protocol.handshake`: HI / HELLO and the password hash, both roles.
* :mod:`~werk._protocol.session`: one connection's conversation, client side (handshake,
  which reply answers which command, when it is over).
* :mod:`~werk._protocol.replies`: a command line paired with the reader of its reply.
* :mod:`~werk._protocol.jsonc` and :mod:`~werk._protocol.timefmt`: JSON and timestamps as
  the wire wants them.

The sync client, the asyncio client, the worker and the embedded server all sit on this
package. Internal: nothing here is supported API.
"""

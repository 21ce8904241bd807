"""Django's SQLite backend, counting the connections a process opens and closes."""

import itertools

from django.db.backends.sqlite3 import base

_opened = itertools.count(1)
_closed = itertools.count(1)
OPENED = [0]
CLOSED = [0]


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):  # type: ignore[no-untyped-def]
        connection = super().get_new_connection(conn_params)
        OPENED[0] = next(_opened)
        return connection

    def _close(self):  # type: ignore[no-untyped-def]
        if self.connection is not None:
            CLOSED[0] = next(_closed)
        super()._close()

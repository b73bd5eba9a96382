"""Django's PostgreSQL backend with a health check that costs no round trip (issue 20).

CONN_HEALTH_CHECKS makes Django check a reused connection before the first query of each
request, with a ``SELECT 1``: a round trip to Postgres, and a query for it to run, on every
request that touches the database (an accepted buy, an order poll). Here the check asks the
socket instead: an idle connection has nothing to read, so one that is readable has been told
something by the server, which only speaks unasked when it is closing the connection (a
restart, pg_terminate_backend, idle timeouts), or its peer is gone (EOF). Then the connection
is closed and the query opens a new one, as Django does when its probe fails. A connection
that Django itself marked broken (errors_occurred) is still probed with ``SELECT 1``.

DATABASES' ENGINE is this module's package: config.postgres.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if not self._idle_and_open():
            self.close()
        self.health_check_done = True

    def _idle_and_open(self) -> bool:
        conn = self.connection
        if conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
            return False
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError):  # ValueError: a descriptor beyond select()'s range
            return self.is_usable()
        return not readable

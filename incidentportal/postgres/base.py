"""Django's PostgreSQL backend with a cheaper connection health check.

With CONN_HEALTH_CHECKS Django sends `SELECT 1` before the first query of every request on a persistent
connection: a round trip per request, a tenth of the cost of a webhook event. A connection that the server has
closed or is closing (a restart, pg_terminate_backend, an idle timeout) has something to read on its socket — the
server's goodbye, or the end of the stream — while a healthy idle one has nothing. So: no input waiting and libpq
reporting the connection good and idle means usable; anything else gets Django's own `SELECT 1` check.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        raw = self.connection
        if raw is None or raw.closed:
            return False
        try:
            idle = raw.info.status == pq.ConnStatus.OK and raw.info.transaction_status == pq.TransactionStatus.IDLE
            poller = select.poll()
            poller.register(raw.fileno(), select.POLLIN | select.POLLPRI)
            waiting = poller.poll(0)
        except (OSError, ValueError, AttributeError):  # no poll() here, or the socket is gone: ask the server
            idle, waiting = False, True
        if idle and not waiting:
            return True
        return super().is_usable()

"""Server-side prepared statements for the few hot statements that run once per event or per send.

Django's psycopg cursors bind parameters on the client, which never prepares: every execution is parsed and planned
afresh. For the big fixed statements of the hot paths (the paging sender's claim, the alert ingestion upsert)
planning cost more than running them, so those run on a cursor that binds on the server and prepares each statement
once per connection (psycopg keeps the prepared statements, per connection, keyed by the query text).
"""

from __future__ import annotations

import psycopg
from django.db import connection


class PreparedCursor(psycopg.Cursor):
    """Server-side binding with every statement prepared."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def prepared_cursor():
    """A Django cursor (query logging and execute wrappers included) over a PreparedCursor. PostgreSQL only."""
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns preparing off on its connections; allow it for statements that ask for it (prepare=True)
        # and, with this threshold, for nothing else.
        raw.prepare_threshold = 2**31 - 1
    cursor = PreparedCursor(raw)
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)

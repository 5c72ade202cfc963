"""Database helpers: server-side prepared statements for the few hot statements that run once per event or per
send, and the claim of due rows that every timer tick makes.

Django's psycopg cursors bind parameters on the client, which never prepares: every execution is parsed and planned
afresh. For the big fixed statements of the hot paths (the paging sender's claim, the alert ingestion upsert)
planning cost more than running them, so those run on a cursor that binds on the server and prepares each statement
once per connection (psycopg keeps the prepared statements, per connection, keyed by the query text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import psycopg
from django.db import connection, transaction


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


def claim_due_rows(queryset, *, order_by: Sequence[str], limit: int, of: Sequence[str] = ("self",)) -> list:
    """Inside the caller's transaction: up to `limit` rows of `queryset` in `order_by` order, locked FOR NO KEY
    UPDATE SKIP LOCKED (`of` names the tables locked: "self" and any select_related ones). Rows another tick or a
    person holds are skipped, never waited for: the next tick picks them up. Several ticks at once never do a row
    twice."""
    return list(queryset.select_for_update(of=tuple(of), skip_locked=True, no_key=True).order_by(*order_by)[:limit])


def work_due_rows(
    queryset, handle: Callable, *, order_by: Sequence[str], limit: int, of: Sequence[str] = ("self",)
) -> int:
    """One batch of a timer tick, in one transaction: claim the due rows (claim_due_rows) and `handle` each.
    Returns how many were handled."""
    with transaction.atomic():
        rows = claim_due_rows(queryset, order_by=order_by, limit=limit, of=of)
        for row in rows:
            handle(row)
    return len(rows)

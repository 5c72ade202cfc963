"""Sent marks: the durable note "this notification left for its provider", written the moment a backend returns.

A sender claims a batch of due notifications in one transaction (its row locks and the fence against
acknowledgements last until the batch commits) and sends them one after another. If its worker is killed
mid-batch, that transaction rolls back and the batch's rows are pending again — including the ones it had already
sent. So after each send, before the next, the sender writes one sent mark per row of the message on its own
autocommit connection: a committed fact that survives the rollback. The next sender that claims such a row finds
its mark and records it as sent (receipt and provider id from the mark) without sending it again; the batch's own
commit deletes its marks in the statement that marks the rows sent. Exactly once, as with one transaction per
send: only a send whose worker dies between the provider's answer and the mark's commit can go out twice, and it
carries the same idempotency key.

The table has no foreign key on purpose: the mark is written while the sender's own transaction holds the
notification row FOR UPDATE, and a foreign-key check would wait for that lock (a sender waiting for itself).

PostgreSQL only: SQLite serialises writers, so there a sender sends one row per transaction and writes no marks.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from django.db import connection

from .models import Notification, SentMark

logger = logging.getLogger("oncall.paging.sentmarks")

_local = threading.local()

INSERT_SQL = (
    f"INSERT INTO {SentMark._meta.db_table} "  # noqa: S608 - table name is a constant
    "(notification_id, leader_id, sent_at, receipt, provider_id) "
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::varchar[], %s::varchar[]) "
    "ON CONFLICT (notification_id) DO NOTHING"
)


def enabled() -> bool:
    return connection.vendor == "postgresql"


def _side_connection():
    """This thread's autocommit connection to the default database (opened on first use, reopened if broken)."""
    raw = getattr(_local, "connection", None)
    if raw is not None and not raw.closed:
        return raw
    raw = connection.get_new_connection(connection.get_connection_params())
    raw.autocommit = True
    _local.connection = raw
    return raw


def close(*, discard_marks: bool = False) -> None:
    """Close this thread's connection; `discard_marks` first deletes every mark (tests: a test's transaction is
    rolled back, and with it the deletes that its batches' commits would have made)."""
    raw = getattr(_local, "connection", None)
    _local.connection = None
    if raw is not None and not raw.closed:
        if discard_marks:
            raw.execute(f"DELETE FROM {SentMark._meta.db_table}")  # noqa: S608 - constant table name
        raw.close()


def write(rows: list[Notification]) -> None:
    """Commit a sent mark for each row of one sent message (rows[0] is the message's leader). Raises if the
    database cannot be reached twice in a row: the caller's transaction then rolls back, as a failed commit would."""
    leader = rows[0]
    params = [
        [row.pk for row in rows],
        [None if row is leader else leader.pk for row in rows],
        [row.sent_at for row in rows],
        [row.receipt for row in rows],
        [row.provider_id for row in rows],
    ]
    for attempt in (1, 2):
        raw = _side_connection()
        try:
            # A plain psycopg cursor: server-side binding, the statement prepared once per connection.
            with psycopg.Cursor(raw) as cursor:
                cursor.execute(INSERT_SQL, params, prepare=True)
            return
        except Exception:
            close()
            if attempt == 2:
                raise
            logger.warning("sent marks: connection lost, reconnecting", exc_info=True)


def notification_for_provider_id(provider_id: str) -> int | None:
    """The notification whose message or call has this provider id while its sender's batch is still open (its
    row does not show the id until the batch commits)."""
    if not enabled() or not provider_id:
        return None
    return SentMark.objects.filter(provider_id=provider_id).values_list("notification_id", flat=True).first()


def restore(ids: list[int]) -> list[int]:
    """Rows among `ids` (locked by the caller, status pending) that carry a sent mark: record them as sent from
    their mark and delete the marks. Returns the restored ids. For a caller about to cancel or re-send rows whose
    sender died mid-batch."""
    if not enabled() or not ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH marks AS (DELETE FROM {SentMark._meta.db_table} WHERE notification_id = ANY(%s) "  # noqa: S608
            "RETURNING notification_id, leader_id, sent_at, receipt, provider_id) "
            f"UPDATE {Notification._meta.db_table} AS n SET status = 'sent', sent_at = m.sent_at, "
            "last_attempt_at = m.sent_at, attempts = n.attempts + 1, batched_into_id = m.leader_id, "
            "receipt = m.receipt, receipt_at = m.sent_at, provider_id = m.provider_id "
            "FROM marks m WHERE n.id = m.notification_id AND n.status = 'pending' RETURNING n.id",
            [list(ids)],
        )
        return [row[0] for row in cursor.fetchall()]

"""INC reference numbers: unique and increasing, not gap-free.

On PostgreSQL they come from a sequence (`nextval` never waits for another transaction and is not rolled back),
so a declaration never queues behind another one still open (an alert storm auto-declaring incidents in batched
transactions used to hold a single counter row for seconds), and a declaration that rolls back after taking its
number leaves that number unused. On SQLite (`make run`, one writer at a time anyway) the `ReferenceCounter` row
is the counter, locked while a number is taken.

Anything that writes incident numbers itself (bulk loads in bench/, fixtures) calls `catch_up()` afterwards so
the next number issued is past every existing one. The migration that creates the sequence calls
`create_sequence()`; reversing it calls `drop_sequence()`, which first hands the sequence's position to the row.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from .models import ReferenceCounter

SEQUENCE = "incidents_reference_number_seq"  # spelled out in the SQL below too
COUNTER = "incident"

# The highest number already taken by anything: an incident, the counter row, or the sequence itself.
_HIGHEST_TAKEN = """
    GREATEST(
        (SELECT COALESCE(MAX(number), 0) FROM incidents_incident),
        (SELECT COALESCE(MAX(value), 0) FROM incidents_referencecounter WHERE name = 'incident'),
        (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM incidents_reference_number_seq)
    )
"""
_CATCH_UP = "SELECT setval('incidents_reference_number_seq', " + _HIGHEST_TAKEN + " + 1, false) - 1"
_HIGHEST = "SELECT " + _HIGHEST_TAKEN


def uses_sequence(connection) -> bool:
    return connection.vendor == "postgresql"


def next_number(using: str = DEFAULT_DB_ALIAS) -> int:
    """The next INC number. Never reused, even if the caller's transaction rolls back (on PostgreSQL)."""
    return take_numbers(1, using=using)[0]


def take_numbers(count: int, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    """`count` new INC numbers, increasing (not necessarily consecutive on PostgreSQL), for bulk creation."""
    if count <= 0:
        return []
    connection = connections[using]
    if uses_sequence(connection):
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [SEQUENCE, count])
            return sorted(row[0] for row in cursor.fetchall())
    with transaction.atomic(using=using):
        counter, _ = ReferenceCounter.objects.using(using).select_for_update().get_or_create(name=COUNTER)
        first = counter.value + 1
        counter.value += count
        counter.save(update_fields=["value"])
    return list(range(first, first + count))


def catch_up(connection=None) -> int:
    """Move the numbering past every existing incident number (never backwards). Returns the highest number
    taken so far. Call after writing incident numbers directly (bulk loads)."""
    connection = connection or connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        if uses_sequence(connection):
            cursor.execute(_CATCH_UP)
            return cursor.fetchone()[0]
        cursor.execute("SELECT COALESCE(MAX(number), 0) FROM incidents_incident")
        highest = cursor.fetchone()[0]
    with transaction.atomic(using=connection.alias):
        counter, _ = ReferenceCounter.objects.using(connection.alias).select_for_update().get_or_create(name=COUNTER)
        if counter.value < highest:
            counter.value = highest
            counter.save(update_fields=["value"])
        return counter.value


def create_sequence(connection) -> None:
    """The sequence, started past the counter row and every existing incident (PostgreSQL only)."""
    if not uses_sequence(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE IF NOT EXISTS incidents_reference_number_seq AS bigint MINVALUE 1 NO CYCLE")
    catch_up(connection)


def drop_sequence(connection) -> None:
    """Hand the sequence's position to the counter row (so no number is reused after going back), then drop it."""
    if not uses_sequence(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute(_HIGHEST)
        highest = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO incidents_referencecounter (name, value) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            [COUNTER, highest],
        )
        cursor.execute("DROP SEQUENCE IF EXISTS incidents_reference_number_seq")

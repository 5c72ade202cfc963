"""Trigram (pg_trgm) GIN indexes for the incident list's text search, on PostgreSQL only.

The search (incidents.selectors.incident_list) filters with `title__icontains` / `summary__icontains`, which
Django writes on PostgreSQL as `UPPER("title"::text) LIKE UPPER('%text%')`: an index on the bare column would
never be used, so the indexes are on that same expression, with the gin_trgm_ops operator class (which serves
LIKE with a leading wildcard).

SQLite (`make run` without DATABASE_URL) has neither the extension nor GIN: every operation here is a no-op
there. The indexes exist in the database only, not in the models' state, so the models (which also run on
SQLite) carry no PostgreSQL-only Meta.indexes and makemigrations stays clean. They are written in SQL because
GinIndex(OpClass(...)) on an expression needs django.contrib.postgres in INSTALLED_APPS (it registers OpClass
as an index wrapper), which this project does not install.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

SEARCHED_COLUMNS = ["title", "summary"]


class CreateTrigramExtension(TrigramExtension):
    """CREATE EXTENSION pg_trgm on PostgreSQL (CreateExtension skips other databases going forwards, not going
    backwards). Unapplying keeps the extension: something else in the database may use it."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass


class RunSQLOnPostgreSQL(migrations.RunSQL):
    """RunSQL that does nothing on databases other than PostgreSQL."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return "Raw SQL operation (PostgreSQL only)"


def trigram_index(column: str) -> RunSQLOnPostgreSQL:
    # UPPER(column::text) is exactly the expression Django's icontains lookup emits on PostgreSQL.
    name = f"incident_{column}_trgm_idx"
    return RunSQLOnPostgreSQL(
        sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "incidents_incident" '
        f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)',
        reverse_sql=f'DROP INDEX IF EXISTS "{name}"',
    )


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0002_seed_guide"),
    ]

    operations = [
        CreateTrigramExtension(),
        *[trigram_index(column) for column in SEARCHED_COLUMNS],
    ]

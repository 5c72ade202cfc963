"""The actor's full foreign-key index goes: audit_actor_idx (partial, NOT NULL) serves every lookup by actor, and
records of the portal itself (alert ingestion opens one per group) no longer insert a NULL entry into it.

SQLite rebuilds the table for this, which drops its append-only triggers: they are installed again (0002)."""

from importlib import import_module

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

append_only = import_module("incidents.audit.migrations.0002_append_only_triggers")


def reinstall_on_sqlite(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        append_only.install(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_partial_actor_incident_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditrecord",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(reinstall_on_sqlite, migrations.RunPython.noop, elidable=False),
    ]

"""INC numbers from a PostgreSQL sequence (incidents/numbering.py): started past the counter row and every existing
incident so no number is reused; reversing hands the sequence's position back to the counter row. SQLite keeps
the counter row, so this does nothing there."""

from django.db import migrations

from incidents import numbering


def forwards(apps, schema_editor):
    numbering.create_sequence(schema_editor.connection)


def backwards(apps, schema_editor):
    numbering.drop_sequence(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0008_change_detected_event_type"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]

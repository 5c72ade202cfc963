"""The application's database role (README, Production) owns nothing: on the audit tables it may only read and
append. It cannot TRUNCATE them, disable or drop their append-only triggers, or update and delete rows; the
portal's other tables it reads and writes."""

import uuid

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from incidents.audit.models import AuditAction, AuditRecord
from incidents.audit.recorder import record_change
from incidents.audit.roles import APPEND_ONLY_TABLES
from tests.factories import declare

pytestmark = pytest.mark.django_db


@pytest.fixture
def app_role(db):
    """A role granted as `manage.py grant_app_role` grants it, made current with SET ROLE. Created inside the test's
    transaction, so it disappears with it (roles are cluster-wide; the name is unique per run)."""
    name = f"portal_app_test_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{name}" NOLOGIN')
    call_command("grant_app_role", name, "--owner", connection.settings_dict["USER"] or "postgres")
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{name}"')
    yield name
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def refused(statement, params=None) -> str:
    with pytest.raises(DatabaseError) as error, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
    return str(error.value)


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_app_role_cannot_truncate_or_touch_the_triggers_of_the_audit_tables(app_role, table):
    assert "permission denied" in refused(f"TRUNCATE {table}")
    assert "must be owner" in refused(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
    assert "must be owner" in refused(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
    assert "must be owner" in refused(f"DROP TRIGGER {table}_append_only ON {table}")
    assert "permission denied" in refused(f"UPDATE {table} SET id = id")
    assert "permission denied" in refused(f"DELETE FROM {table}")


def test_app_role_still_runs_the_portal_and_appends_to_the_audit_trail(app_role, responder):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == app_role
    incident = declare(by=responder)
    record = record_change(action=AuditAction.CHANGED, obj=incident, after={"checked": True})
    assert AuditRecord.objects.filter(pk=record.pk).exists()
    assert AuditRecord.objects.filter(incident_id=incident.pk, action=AuditAction.CREATED).exists()


def test_the_owner_can_still_truncate_which_is_why_the_app_must_not_be_the_owner(responder):
    declare(by=responder)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableowner = current_user FROM pg_tables WHERE tablename = 'audit_auditrecord'")
        assert cursor.fetchone()[0] is True
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE audit_auditrecord")
        assert not AuditRecord.objects.exists()
        transaction.set_rollback(True)
    assert AuditRecord.objects.exists()

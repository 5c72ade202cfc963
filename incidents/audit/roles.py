"""The PostgreSQL privileges of the portal's application role, so the audit trail stays append-only against
the application's own database login too.

Two roles: the migration role owns every table (it runs `manage.py migrate`, so it creates, alters and may
truncate them, and installs the append-only triggers); the application role (the web, worker and beat processes'
DATABASE_URL) owns nothing. It reads and writes the portal's tables, but on the audit tables it may only SELECT and
INSERT: no UPDATE or DELETE (the trigger refuses them anyway), no TRUNCATE (which bypasses row triggers), and as a
non-owner it cannot ALTER the tables, so it can neither disable nor drop their triggers.
"""

from __future__ import annotations

from django.db import connection

APPEND_ONLY_TABLES = ("audit_auditrecord", "audit_evidenceexport")


def app_role_statements(*, app_role: str, owner_role: str | None = None, schema: str = "public") -> list[str]:
    """The GRANT/REVOKE statements, run as the migration role (owner_role: also for tables later migrations
    create, through default privileges)."""
    quote = connection.ops.quote_name
    app, space = quote(app_role), quote(schema)
    audit = ", ".join(f"{space}.{quote(table)}" for table in APPEND_ONLY_TABLES)
    statements = [
        f"GRANT USAGE ON SCHEMA {space} TO {app}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {space} TO {app}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {space} TO {app}",
        f"REVOKE ALL ON {audit} FROM {app}",
        f"GRANT SELECT, INSERT ON {audit} TO {app}",
    ]
    if owner_role:
        owner = quote(owner_role)
        statements += [
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {space} "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {space} "
            f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {app}",
        ]
    return statements


def grant_app_role(*, app_role: str, owner_role: str | None = None, schema: str = "public") -> list[str]:
    statements = app_role_statements(app_role=app_role, owner_role=owner_role, schema=schema)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return statements

"""Grant the application's database role what it needs, and nothing on the audit tables beyond SELECT and INSERT.

Run as the migration role (the owner of the tables), after `migrate`:

    DATABASE_URL=postgres://portal_owner@db/portal manage.py grant_app_role portal_app --owner portal_owner
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from incidents.audit.roles import app_role_statements, grant_app_role


class Command(BaseCommand):
    help = "Grant the application role its privileges: read/write on the portal, append-only on the audit trail."

    def add_arguments(self, parser):
        parser.add_argument("app_role", help="the role in the web/worker processes' DATABASE_URL")
        parser.add_argument("--owner", help="the migration role: tables it creates later get the same grants")
        parser.add_argument("--schema", default="public")
        parser.add_argument(
            "--print", dest="print_only", action="store_true", help="print the SQL instead of running it"
        )

    def handle(self, *args, app_role, owner=None, schema="public", print_only=False, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Database roles apply to PostgreSQL only.")
        if print_only:
            for statement in app_role_statements(app_role=app_role, owner_role=owner, schema=schema):
                self.stdout.write(statement + ";")
            return
        with transaction.atomic():
            statements = grant_app_role(app_role=app_role, owner_role=owner, schema=schema)
        self.stdout.write(f"{len(statements)} statements applied for role {app_role}.")

"""Audit trail cost: the same incident work (declare, a note, a role hand-over, two status changes) with the
audit receivers connected and disconnected; time and queries per cycle.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ip_sec .venv/bin/python bench/audit.py

Everything runs inside a transaction that is rolled back, so the database is left as it was (on_commit side
effects such as paging never fire). Prints `RESULT ...` as its last line.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")

import django  # noqa: E402

django.setup()

from django.apps import apps  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from incidents.audit.context import acting_as  # noqa: E402
from incidents.audit.models import AuditRecord  # noqa: E402
from incidents.audit.signals import connect_receivers, disconnect_receivers  # noqa: E402
from incidents.models import Role, SeverityPolicy  # noqa: E402
from incidents.services.entries import add_timeline_entry  # noqa: E402
from incidents.services.roles import assign_role  # noqa: E402
from incidents.services.status import change_status, declare_incident  # noqa: E402

CYCLES = 40


class Rollback(Exception):
    pass


def cycle(responder, other, severity):
    incident = declare_incident(title="Bench incident", severity=severity, by=responder)
    add_timeline_entry(incident=incident, by=responder, body="Looking at the **database**.")
    assign_role(incident=incident, role=Role.INCIDENT_COMMANDER, holder=other, by=responder)
    change_status(incident=incident, to="identified", by=responder)
    change_status(incident=incident, to="monitoring", by=responder)


def measure(responder, other, severity):
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        for _ in range(CYCLES):
            cycle(responder, other, severity)
        elapsed = time.perf_counter() - start
    return elapsed / CYCLES * 1000, len(queries) / CYCLES


def main():
    models = apps.get_models()
    results = {}
    try:
        with transaction.atomic():
            group = Group.objects.get(name="responder")
            responder = User.objects.create(username="bench-audit-1")
            other = User.objects.create(username="bench-audit-2")
            responder.groups.add(group)
            other.groups.add(group)
            severity = SeverityPolicy.objects.get(level="P2")
            with acting_as(responder, source="bench"):
                cycle(responder, other, severity)  # warm caches
                before = AuditRecord.objects.count()
                results["on"] = measure(responder, other, severity)
                records = (AuditRecord.objects.count() - before) / CYCLES
                disconnect_receivers(models)
                try:
                    results["off"] = measure(responder, other, severity)
                finally:
                    connect_receivers(models)
            raise Rollback
    except Rollback:
        pass
    (on_ms, on_q), (off_ms, off_q) = results["on"], results["off"]
    print(f"with audit:    {on_ms:.1f} ms, {on_q:.0f} queries per cycle ({records:.0f} audit records)")
    print(f"without audit: {off_ms:.1f} ms, {off_q:.0f} queries per cycle")
    print(
        f"RESULT cycle_ms_audit={on_ms:.1f} cycle_ms_no_audit={off_ms:.1f} queries_audit={on_q:.0f} "
        f"queries_no_audit={off_q:.0f} audit_records_per_cycle={records:.0f}"
    )


if __name__ == "__main__":
    main()

"""Benchmark the responder pages on a production-sized database.

Creates its own PostgreSQL database (`ip_bench_pages` on the server of DATABASE_URL), migrates it, bulk-loads
20,000 incidents and 500,000 timeline entries (one incident with 2,000 of them) with COPY, then times the
dashboard, a filtered incident list and the busy incident page through the Django test client (warm-up, then
REQUESTS requests each) and drops the database again.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/incidentportal .venv/bin/python bench/pages.py

Prints one line: RESULT dashboard_p95_ms=... list_p95_ms=... incident_p95_ms=... queries_dashboard=...
queries_incident=...
"""

from __future__ import annotations

import io
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INCIDENTS = int(os.environ.get("BENCH_INCIDENTS", 20_000))
ENTRIES = int(os.environ.get("BENCH_ENTRIES", 500_000))
BUSY_ENTRIES = 2_000
ACTIVE = 40
REQUESTS = int(os.environ.get("BENCH_REQUESTS", 40))
WARMUP = 5
BENCH_DB = "ip_bench_pages"


def bench_database_url() -> tuple[str, str]:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/incidentportal")
    parsed = urlparse(base)
    if parsed.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise SystemExit("bench/pages.py needs a PostgreSQL DATABASE_URL")
    admin = urlunparse(parsed._replace(scheme="postgresql", path="/postgres"))
    return urlunparse(parsed._replace(path=f"/{BENCH_DB}")), admin


def recreate_database(admin_url: str, *, drop_only: bool = False) -> None:
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def database_exists(admin_url: str) -> bool:
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone() is not None


def copy_rows(cursor, table: str, columns: list[str], rows) -> None:
    """COPY in chunks of text rows (tab-separated, \\N for NULL)."""

    def cell(value):
        if value is None:
            return "\\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        if isinstance(value, datetime):
            return value.isoformat()
        text = str(value)
        return text.replace("\\", "\\\\").replace("\t", " ").replace("\n", "\\n")

    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for n, row in enumerate(rows, 1):
            buffer.write("\t".join(cell(v) for v in row) + "\n")
            if n % 20_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def load_data():
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from incidents import numbering
    from incidents.models import Incident, Service, SeverityPolicy, Status

    rng = random.Random(5)
    now = datetime.now(UTC)
    severities = {p.level: p for p in SeverityPolicy.objects.all()}
    levels = ["P0", "P1", "P1", "P2", "P2", "P2", "P3", "P3"]

    user = User.objects.create_user("bench", password="bench-password-not-secret", first_name="Bench", last_name="User")
    user.groups.add(Group.objects.get(name="responder"))
    people = [User(username=f"oncall{i}", first_name=f"On{i}", last_name="Call") for i in range(30)]
    User.objects.bulk_create(people)
    people = list(User.objects.filter(username__startswith="oncall"))
    services = [
        Service(name=name, slug=name.lower().replace(" ", "-"))
        for name in [
            "Backend API",
            "Database",
            "Payments",
            "Auth",
            "Search",
            "Web app",
            "Mobile API",
            "Email",
            "Exports",
            "Status page",
            "Billing",
            "CDN",
        ]
    ]
    Service.objects.bulk_create(services)
    services = list(Service.objects.all())
    words = ["latency", "errors", "timeout", "outage", "degraded", "failing", "slow", "5xx", "memory", "disk"]

    incident_rows = []
    for number in range(1, INCIDENTS + 1):
        age = timedelta(minutes=(INCIDENTS - number) * 50 + rng.randint(0, 40))
        declared = now - age
        level = levels[rng.randrange(len(levels))]
        policy = severities[level]
        if number > INCIDENTS - ACTIVE:
            status = rng.choice([Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING])
            resolved = closed = None
        else:
            resolved = declared + timedelta(minutes=rng.randint(10, 600))
            closed = resolved + timedelta(days=1) if age > timedelta(days=3) else None
            status = Status.CLOSED if closed else Status.RESOLVED
        title = f"{rng.choice(services).name} {rng.choice(words)} {number}"
        ack = declared + timedelta(minutes=rng.randint(1, 20))
        incident_rows.append(
            (
                number,
                title,
                "",
                policy.pk,
                status,
                "monitoring_alert",
                "Some users affected.",
                None,
                number % 20 == 7,
                user.pk,
                declared - timedelta(minutes=2),
                declared,
                ack,
                rng.choice(people).pk,
                None,
                resolved,
                resolved,
                closed,
                now,
                policy.response_due_at(declared),
                None if resolved else declared + (policy.update_cadence or timedelta(hours=1)),
            )
        )
    columns = [
        "number",
        "title",
        "summary",
        "severity_id",
        "status",
        "detection_source",
        "impact",
        "users_affected_percent",
        "is_restricted",
        "created_by_id",
        "detected_at",
        "declared_at",
        "acknowledged_at",
        "acknowledged_by_id",
        "identified_at",
        "mitigated_at",
        "resolved_at",
        "closed_at",
        "updated_at",
        "response_due_at",
        "next_update_due_at",
    ]
    with connection.cursor() as cursor:
        copy_rows(cursor.cursor, "incidents_incident", columns, incident_rows)
    numbering.catch_up()  # the numbers were written directly
    ids = list(Incident.objects.order_by("number").values_list("id", flat=True))
    busy_id = ids[-1]  # the newest, active incident is the busy one

    with connection.cursor() as cursor:
        copy_rows(
            cursor.cursor,
            "incidents_incident_services",
            ["incident_id", "service_id"],
            ((incident_id, s.pk) for incident_id in ids for s in rng.sample(services, rng.randint(1, 2))),
        )
        # Every incident has an Incident Commander; active ones have all four roles.
        roles = ["incident_commander", "technical_lead", "communications_lead", "scribe"]
        copy_rows(
            cursor.cursor,
            "incidents_roleassignment",
            ["incident_id", "role", "holder_id", "assigned_at", "relieved_at"],
            (
                (incident_id, role, rng.choice(people).pk, now, None)
                for n, incident_id in enumerate(ids)
                for role in (roles if n >= len(ids) - ACTIVE else roles[:1])
            ),
        )
        copy_rows(
            cursor.cursor,
            "incidents_incidentresponder",
            ["incident_id", "user_id", "added_at"],
            ((incident_id, rng.choice(people).pk, now) for incident_id in ids),
        )
        copy_rows(
            cursor.cursor,
            "incidents_checklistitem",
            ["incident_id", "phase", "position", "text", "command"],
            (
                (incident_id, phase, position, f"{phase} step {position}", "")
                for incident_id in ids[-ACTIVE:]
                for phase in ["triage", "detection", "response", "resolution", "recovery", "closure"]
                for position in range(1, 6)
            ),
        )

        kinds = ["note", "note", "note", "status", "role", "checklist", "update", "action"]

        def entries():
            others = ENTRIES - BUSY_ENTRIES
            for n in range(others):
                incident_id = ids[n % (len(ids) - 1)]
                yield (
                    incident_id,
                    now - timedelta(minutes=rng.randint(0, 500_000)),
                    now,
                    rng.choice(people).pk,
                    rng.choice(kinds),
                    "Checked the dashboards.",
                    "<p>Checked the dashboards.</p>",
                    False,
                )
            start = now - timedelta(hours=6)
            for n in range(BUSY_ENTRIES):
                yield (
                    busy_id,
                    start + timedelta(seconds=n * 10),
                    start + timedelta(seconds=n * 10),
                    rng.choice(people).pk,
                    rng.choice(kinds),
                    f"Busy entry {n} with **markdown**.",
                    f"<p>Busy entry {n} with <strong>markdown</strong>.</p>",
                    n % 50 == 0,
                )

        copy_rows(
            cursor.cursor,
            "incidents_timelineentry",
            ["incident_id", "occurred_at", "created_at", "author_id", "kind", "body", "body_html", "is_key_event"],
            entries(),
        )
        cursor.execute("ANALYZE")
    return user, Incident.objects.get(pk=busy_id), services


def measure(client, path: str, *, htmx: bool = False) -> tuple[list[float], list[float], int, int]:
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    for _ in range(WARMUP):
        client.get(path, **headers)
    timings, cpu = [], []
    for _ in range(REQUESTS):
        start, start_cpu = time.perf_counter(), time.process_time()
        response = client.get(path, **headers)
        timings.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, **headers)
    return timings, cpu, len(queries), response.status_code


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> None:
    url, admin = bench_database_url()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")
    keep = os.environ.get("BENCH_KEEP") == "1"  # profiling: keep the loaded database between runs
    if not (keep and database_exists(admin)):
        recreate_database(admin)
    try:
        # Imported here, not at the top: this script points Django at its database and calls django.setup()
        # first; every import below in main() waits for that.
        import django

        django.setup()
        from django.core.management import call_command
        from django.test import Client

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        from django.contrib.auth.models import User

        if keep and User.objects.filter(username="bench").exists():
            from incidents.models import Incident, Service

            user, busy, services = (
                User.objects.get(username="bench"),
                Incident.objects.get(number=INCIDENTS),
                list(Service.objects.all()),
            )
        else:
            user, busy, services = load_data()
        print(f"loaded {INCIDENTS} incidents and {ENTRIES} timeline entries in {time.perf_counter() - started:.1f}s")

        print(f"load average before timing: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        client = Client()
        client.force_login(user)
        backend = next(s for s in services if s.slug == "backend-api")
        pages = {
            "dashboard": ("/", False),
            "list": (f"/incidents/?severity=P1&severity=P2&status=closed&service={backend.slug}&q=latency", False),
            "list_unfiltered": ("/incidents/", False),
            "incident": (busy.get_absolute_url(), False),
            "timeline_poll": (f"{busy.get_absolute_url()}?after={busy.timeline.order_by('-id').first().id}", True),
        }
        results = {}
        for name, (path, htmx) in pages.items():
            timings, cpu, queries, status = measure(client, path, htmx=htmx)
            if status not in (200, 204):
                raise SystemExit(f"{name}: {path} answered {status}")
            results[name] = (p95(timings), statistics.median(timings), queries)
            # Wall time includes waiting for a CPU on a shared machine; the Django process's own CPU time
            # (template rendering, ORM) does not, and neither includes PostgreSQL's share.
            print(
                f"{name:16s} p50={results[name][1]:7.1f} ms  p95={results[name][0]:7.1f} ms"
                f"  python_cpu_p50={statistics.median(cpu):6.1f} ms  queries={queries}"
            )
        print(
            "RESULT"
            f" dashboard_p95_ms={results['dashboard'][0]:.1f}"
            f" list_p95_ms={results['list'][0]:.1f}"
            f" incident_p95_ms={results['incident'][0]:.1f}"
            f" queries_dashboard={results['dashboard'][2]}"
            f" queries_incident={results['incident'][2]}"
            f" list_unfiltered_p95_ms={results['list_unfiltered'][0]:.1f}"
            f" timeline_poll_p95_ms={results['timeline_poll'][0]:.1f}"
            f" queries_timeline_poll={results['timeline_poll'][2]}"
        )
    finally:
        from django.db import connections

        connections.close_all()
        if not keep:
            recreate_database(admin, drop_only=True)


if __name__ == "__main__":
    main()

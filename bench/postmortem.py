"""Post-mortem benchmark: draft the post-mortem of an incident with 1,000 timeline entries, render its report
(the email's HTML with inlined CSS plus the plain-text part, every timeline line included: the worst case), and
serve the metrics page over 20,000 incidents for a one-year period. Runs in a throwaway database
(bench_<name>) so it never touches real data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ip_pm .venv/bin/python bench/postmortem.py
"""

import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")
os.environ.setdefault("TESTING", "1")
os.environ.setdefault("DEBUG", "0")  # as in production: no per-query logging overhead

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

TIMELINE_ENTRIES = 1000
INCIDENTS = 20_000
SERVICES = 30
ACTION_ITEMS = 6000
RUNS = 20


class Rollback(Exception):
    pass


def timed(fn, runs=RUNS):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(int(len(samples) * 0.95) - 1, 0)]


def seed_long_incident(responder):
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    from incidents.markdown import render_markdown
    from incidents.models import EntryKind, SeverityPolicy, TimelineEntry
    from incidents.services.status import declare_incident

    incident = declare_incident(
        title="Database performance severely degraded",
        severity=SeverityPolicy.objects.get(level="P1"),
        by=responder,
        summary="Checkout timed out for most EU users.",
    )
    start = incident.declared_at - timedelta(hours=10)
    TimelineEntry.objects.bulk_create(
        TimelineEntry(
            incident=incident,
            occurred_at=start + timedelta(seconds=30 * n),
            kind=EntryKind.NOTE,
            body=(body := f"Step {n}: checked `pg_stat_activity`, **{n % 17} slow queries** on replica {n % 3}"),
            body_html=render_markdown(body),
            author=responder,
            is_key_event=n % 10 == 0,
        )
        for n in range(TIMELINE_ENTRIES)
    )
    incident.resolved_at = timezone.now()
    incident.mitigated_at = incident.resolved_at - timedelta(minutes=20)
    incident.acknowledged_at = incident.declared_at + timedelta(minutes=4)
    incident.status = "resolved"
    incident.save()
    return incident


def seed_metrics(owner):
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    from incidents import numbering
    from incidents.models import Incident, Service, SeverityPolicy
    from postmortems.models import ActionItem, PostMortem

    rng = random.Random(7)
    severities = list(SeverityPolicy.objects.order_by("rank"))
    catalogue = [Service.objects.create(name=f"Service {n:02d}", slug=f"service-{n:02d}") for n in range(SERVICES)]
    now = timezone.now()
    numbers = numbering.take_numbers(INCIDENTS)
    rows = []
    for n in range(INCIDENTS):
        severity = severities[rng.choice([0, 1, 1, 2, 2, 2, 3, 3])]
        detected = now - timedelta(minutes=rng.randint(60, 365 * 24 * 60))
        declared = detected + timedelta(minutes=rng.randint(0, 20))
        acknowledged = declared + timedelta(minutes=rng.randint(1, 120)) if rng.random() < 0.9 else None
        resolved = declared + timedelta(minutes=rng.randint(30, 600)) if rng.random() < 0.95 else None
        rows.append(
            Incident(
                number=numbers[n],
                title=f"Bench incident {n}",
                severity=severity,
                status="resolved" if resolved else "investigating",
                detected_at=detected,
                declared_at=declared,
                acknowledged_at=acknowledged,
                mitigated_at=resolved - timedelta(minutes=10) if resolved else None,
                resolved_at=resolved,
                response_due_at=severity.response_due_at(declared),
                is_restricted=n % 50 == 0,
            )
        )
    Incident.objects.bulk_create(rows, batch_size=2000)
    ids = list(Incident.objects.filter(title__startswith="Bench incident").values_list("pk", flat=True))
    through = Incident.services.through
    links = []
    for pk in ids:
        for service in rng.sample(catalogue, rng.choice([0, 1, 1, 2])):
            links.append(through(incident_id=pk, service_id=service.pk))
    through.objects.bulk_create(links, batch_size=5000)
    with_items = ids[: ACTION_ITEMS // 2]
    PostMortem.objects.bulk_create(
        [PostMortem(incident_id=pk, title="pm", due_at=now) for pk in with_items], batch_size=2000
    )
    postmortems = dict(PostMortem.objects.filter(incident_id__in=with_items).values_list("incident_id", "pk"))
    today = timezone.localdate()
    ActionItem.objects.bulk_create(
        [
            ActionItem(
                postmortem_id=postmortems[pk],
                incident_id=pk,
                title=f"Item {i}",
                owner=owner,
                due_date=today + timedelta(days=rng.randint(-60, 60)),
                status=rng.choice(["open", "in_progress", "done", "done", "wont_do"]),
            )
            for pk in with_items
            for i in range(2)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def main():
    setup_test_environment()  # locmem email
    database = connection.settings_dict
    database["TEST"]["NAME"] = f"bench_{database['NAME'].rsplit('/', 1)[-1]}_postmortem"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        # Imported here, not at the top: this script sets up Django (settings, database) first.
        from postmortems.emails import render_report_html, render_report_text
        from postmortems.models import PostMortem, PostMortemTimelineItem
        from postmortems.report import build_report
        from postmortems.services.drafting import ensure_draft_for
        from postmortems.services.editing import update_timeline
        from tests.factories import ManagerFactory, ResponderFactory

        responder = ResponderFactory(username="bench-responder")
        incident = seed_long_incident(responder)

        def draft():
            try:
                with transaction.atomic():
                    ensure_draft_for(incident=incident, by=responder)
                    raise Rollback
            except Rollback:
                pass

        draft()  # warm-up
        draft_ms, draft_p95 = timed(draft, runs=10)
        postmortem = ensure_draft_for(incident=incident, by=responder)
        drafted_lines = PostMortemTimelineItem.objects.filter(postmortem=postmortem).count()  # the key events
        # Worst case for the report: the editor ticks every one of the incident's entries.
        every_entry = [f"entry:{pk}" for pk in incident.timeline.values_list("pk", flat=True)]
        start = time.perf_counter()
        update_timeline(postmortem=postmortem, by=responder, include=every_entry)
        select_all_ms = (time.perf_counter() - start) * 1000
        report_lines = PostMortemTimelineItem.objects.filter(postmortem=postmortem, is_included=True).count()

        def render():
            report = build_report(postmortem.pk)
            render_report_html(report)
            render_report_text(report)

        render()
        with CaptureQueriesContext(connection) as render_queries:
            render()
        report_query_count = len(render_queries)  # read now: the next request clears the connection's query log
        render_ms, render_p95 = timed(render, runs=10)
        html_kb = len(render_report_html(build_report(postmortem.pk))) / 1024

        manager = ManagerFactory(username="bench-manager")
        seed_metrics(manager)
        client = Client()
        client.force_login(manager)
        today = timezone.localdate()
        url = f"/metrics/?start={today - timedelta(days=364)}&end={today}"
        with CaptureQueriesContext(connection) as metric_queries:
            response = client.get(url)
        assert response.status_code == 200, response.status_code
        metrics_query_count = len(metric_queries)
        metrics_ms, metrics_p95 = timed(lambda: client.get(url))
        csv_ms, _ = timed(lambda: client.get(url.replace("/metrics/", "/metrics/export.csv")), runs=5)

        assert PostMortem.objects.filter(pk=postmortem.pk).exists()
        print(
            f"draft of an incident with {incident.timeline.count()} timeline entries ({drafted_lines} key events as "
            f"lines): median {draft_ms:.1f} ms, p95 {draft_p95:.1f} ms; ticking all of them: {select_all_ms:.0f} ms"
        )
        print(
            f"report (HTML inlined + text, {report_lines} lines, {html_kb:.0f} KiB, {report_query_count} queries):"
            f" median {render_ms:.1f} ms, p95 {render_p95:.1f} ms"
        )
        print(
            f"metrics page over {INCIDENTS} incidents, 1 year ({metrics_query_count} queries): "
            f"median {metrics_ms:.1f} ms, p95 {metrics_p95:.1f} ms; CSV median {csv_ms:.1f} ms"
        )
        print(
            f"RESULT draft_ms={draft_ms:.1f} report_render_ms={render_ms:.1f} metrics_p95_ms={metrics_p95:.1f} "
            f"draft_p95_ms={draft_p95:.1f} report_render_p95_ms={render_p95:.1f} metrics_ms={metrics_ms:.1f} "
            f"metrics_queries={metrics_query_count} report_queries={report_query_count} "
            f"select_all_ms={select_all_ms:.0f}"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

"""Status page benchmark: render and revalidation cost of /status/ with 90 days of history, and the email
fan-out to subscribers. Runs in a throwaway database (bench_<name>) so it never touches real data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/incidentportal .venv/bin/python bench/statuspage.py
"""

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")
os.environ.setdefault("TESTING", "1")
os.environ.setdefault("DEBUG", "0")  # cached template loader, as in production

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core import mail  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

SERVICES = 40
INCIDENTS = 180  # over 90 days, 3 published updates each
ACTIVE = 12
SUBSCRIBERS = 2000
RUNS = 40


def timed(fn, runs=RUNS, cpu=None):
    """(median, p95) wall ms; with a `cpu` list, also appends the median CPU ms of this process (the Python side
    of a request: client and server run here), which a busy machine inflates far less than wall time."""
    samples, cpu_samples = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
        cpu_samples.append((time.process_time() - start_cpu) * 1000)
    samples.sort()
    if cpu is not None:
        cpu.append(statistics.median(cpu_samples))
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def seed():
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    import time_machine

    from incidents.models import Incident, Service, SeverityPolicy, Status
    from incidents.services.status import change_status, declare_incident
    from incidents.services.updates import post_status_update
    from incidents.statuspage import services as statuspage_services
    from incidents.statuspage.models import Subscriber
    from tests.factories import ManagerFactory, ResponderFactory

    responder, manager = ResponderFactory(username="bench-responder"), ManagerFactory(username="bench-manager")
    catalogue = [Service.objects.create(name=f"Service {n:02d}", slug=f"service-{n:02d}") for n in range(SERVICES)]
    levels = {policy.level: policy for policy in SeverityPolicy.objects.all()}
    now = timezone.now()
    for n in range(INCIDENTS):
        at = now - timedelta(days=89 * (INCIDENTS - n) / INCIDENTS, minutes=5)
        with time_machine.travel(at, tick=False):
            affected = catalogue[n % SERVICES : n % SERVICES + 2]
            incident = declare_incident(
                title=f"Bench incident {n}", severity=levels[f"P{n % 4}"], by=responder, services=affected
            )
            for status in ("investigating", "identified", "monitoring"):
                post_status_update(
                    incident=incident,
                    kind="external",
                    status=status,
                    by=responder,
                    publish=True,
                    title=f"Public title {n}",
                    description="Some users see errors.",
                    affected_services=affected,
                )
            if n < INCIDENTS - ACTIVE:
                change_status(incident=incident, to=Status.RESOLVED, by=responder)
    for n in range(6):
        starts_at = now + timedelta(hours=n * 6 - 12)
        statuspage_services.schedule_maintenance(
            title=f"Maintenance {n}",
            services=catalogue[n : n + 3],
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            by=manager,
        )
    Subscriber.objects.bulk_create(
        Subscriber(email=f"s{n}@example.com", all_services=n % 2 == 0, confirmed_at=now) for n in range(SUBSCRIBERS)
    )
    through = Subscriber.services.through
    through.objects.bulk_create(
        through(subscriber_id=pk, service_id=catalogue[pk % SERVICES].pk)
        for pk in Subscriber.objects.filter(all_services=False).values_list("pk", flat=True)
    )
    return responder, Incident.objects.active().first()


def main():
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    database = connection.settings_dict
    database["TEST"]["NAME"] = f"bench_{database['NAME'].rsplit('/', 1)[-1]}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        responder, active = seed()
        with connection.cursor() as cursor:
            # Table statistics, as autovacuum gathers them after a load (PostgreSQL here may run without it): the
            # planner's choices on fresh tables without any would measure a database nobody runs.
            cursor.execute("ANALYZE")
        client = Client()

        with CaptureQueriesContext(connection) as render_queries:
            first = client.get("/status/")
        assert first.status_code == 200, first.status_code
        page_queries = len(render_queries)  # read now: the next request clears the connection's query log
        etag = first["ETag"]
        with CaptureQueriesContext(connection) as revalidate_queries:
            assert client.get("/status/", HTTP_IF_NONE_MATCH=etag).status_code == 304
        not_modified_queries = len(revalidate_queries)

        def cold():
            cache.clear()  # every request renders, as after each change
            client.get("/status/")

        render_cpu = []
        render_ms, render_p95 = timed(cold, cpu=render_cpu)
        cached_ms, cached_p95 = timed(lambda: client.get("/status/"))
        revalidate_ms, revalidate_p95 = timed(lambda: client.get("/status/", HTTP_IF_NONE_MATCH=etag))
        feed_ms, _ = timed(lambda: client.get("/status/feed.atom"), runs=10)

        # Imported here, not at the top: this script sets up Django (settings, database) first.
        from incidents.services.updates import post_status_update
        from incidents.statuspage import tasks
        from incidents.statuspage.models import UpdateDelivery

        captured = []
        original = connection.on_commit
        connection.on_commit = lambda func, robust=False: captured.append(func)  # run the sender by hand below
        try:
            start = time.perf_counter()
            update = post_status_update(
                incident=active,
                kind="external",
                status="monitoring",
                by=responder,
                publish=True,
                title="Fix deployed",
                description="Watching.",
                affected_services=list(active.services.all()),
            )
            post_ms = (time.perf_counter() - start) * 1000
        finally:
            connection.on_commit = original
        deliveries = UpdateDelivery.objects.filter(update=update).count()
        mail.outbox.clear()
        start = time.perf_counter()
        tasks.send_update_emails(update.pk)
        send_s = time.perf_counter() - start
        resend_ms, _ = timed(lambda: tasks.send_update_emails(update.pk), runs=5)  # redelivered: nothing to do
        sent = len(mail.outbox)
        assert sent == deliveries, (sent, deliveries)

        print(
            f"page: {page_queries} queries, median {render_ms:.1f} ms, p95 {render_p95:.1f} ms, "
            f"CPU {render_cpu[0]:.1f} ms (rendered)"
        )
        print(f"page: median {cached_ms:.1f} ms, p95 {cached_p95:.1f} ms (rendered page from the cache)")
        print(f"304:  {not_modified_queries} queries, median {revalidate_ms:.1f} ms, p95 {revalidate_p95:.1f} ms")
        print(f"feed: median {feed_ms:.1f} ms")
        print(f"publish with {deliveries} outbox rows: {post_ms:.0f} ms; send: {sent / send_s:.0f} emails/s (locmem)")
        print(
            f"RESULT page_queries={page_queries} page_ms={render_ms:.1f} page_p95_ms={render_p95:.1f} "
            f"page_cpu_ms={render_cpu[0]:.1f} load1={os.getloadavg()[0]:.2f} "
            f"page_cached_ms={cached_ms:.1f} "
            f"not_modified_queries={not_modified_queries} not_modified_ms={revalidate_ms:.1f} feed_ms={feed_ms:.1f} "
            f"publish_ms={post_ms:.0f} deliveries={deliveries} emails_per_s={sent / send_s:.0f} "
            f"redelivered_ms={resend_ms:.1f}"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

"""Escalation benchmark: 10,000 pages whose escalations fall due within one minute, run by the real Celery beat
and two worker processes (the Procfile's layout: one on the `timers` queue, one on `notifications,default`),
against PostgreSQL in a dedicated database and Redis.

For every escalation it measures the lateness: the time the notification reached the channel backend (a
recording backend that appends to a file, as the reliability tests use) minus the page's `escalate_at`; plus how
many escalations were lost (never delivered) or duplicated (delivered more than once, counted by idempotency key).

    REDIS_URL=redis://127.0.0.1:6379/10 .venv/bin/python bench/escalation.py [--pages 10000] [--spread 60]
        [--tick 0.25] [--sender-concurrency 2]

Every team lead (the level that escalates) has two notification rules, email and SMS at once, so each escalation
makes two notifications; lost and duplicated count notifications (by idempotency key), lateness is per notification.

Lateness splits in two: `tick` (the notification's row written by the escalation tick, minus `escalate_at`) and
`send` (delivered minus written: the senders' backlog). The sender and tick settings (PAGING_SENDER_BATCH,
PAGING_SENDER_BATCH_SECONDS, PAGING_TICK_BATCH; set them in the environment to compare) and the load average
before and after the run are printed with the result: this machine may be shared, so compare runs made close
together. A quiet 2-core machine shows load_before near 0.

The database `ip_bench_escalation` (BENCH_DB_NAME; on BENCH_PG_ADMIN_URL's server) is dropped and created afresh;
the Redis database of REDIS_URL is flushed. Prints one final line:
RESULT escalations=10000 notifications=20000 lost=0 duplicated=0 lateness_p50_s=... lateness_p99_s=...
throughput_per_s=... tick_lateness_p99_s=... send_lateness_p99_s=... sender_batch=... sender_batch_seconds=...
sender_concurrency=... tick_batch=... load_before=... load_after=... cores=...
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = os.environ.get("BENCH_DB_NAME", "ip_bench_escalation")
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def pg_url(name: str) -> str:
    return urllib.parse.urlparse(ADMIN_URL)._replace(path=f"/{name}").geturl()


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True, text=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=60.0, help="escalations fall due within this many seconds")
    parser.add_argument("--tick", type=float, default=0.25, help="TIMER_TICK_SECONDS for beat")
    parser.add_argument("--sender-concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up this long after the last due time")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    redis_url = os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/10"
    database_url = pg_url(DB_NAME)
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(ADMIN_URL, f"CREATE DATABASE {DB_NAME}")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "incidentportal.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "TESTING": "1",
            # Production settings for the workers: DEBUG off (cached templates, no per-query logging).
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "LOG_LEVEL": "WARNING",
            "PAGING_SENDER_PARALLELISM": str(args.sender_concurrency),
        }
    )
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, capture_output=True, text=True
    )
    if migrate.returncode:
        print(migrate.stdout, migrate.stderr, file=sys.stderr)
        return 1

    # Imported here, not at the top: this script sets up Django (settings, database) first.
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from incidents.models import Incident, ReferenceCounter, SeverityPolicy
    from oncall.models import ContactMethod, EscalationPolicy, NotificationRule, Person, Team
    from oncall.paging.models import Notification, Page
    from tests.reliability.backends import read_deliveries
    from tests.reliability.harness import Cluster, wait_until

    redis.Redis.from_url(redis_url).flushdb()
    n = args.pages
    started = time.monotonic()
    p1 = SeverityPolicy.objects.get(level="P1")
    policy = EscalationPolicy.objects.get(is_default=True)
    far = timezone.now() + timedelta(days=1)
    leads = Person.objects.bulk_create(
        Person(name=f"Lead {i}", email=f"lead{i}@bench.example.com", phone=f"+1555{i:07d}") for i in range(n)
    )
    methods = ContactMethod.objects.bulk_create(
        ContactMethod(person=p, position=position, channel=channel)
        for p in leads
        for position, channel in enumerate(("email", "sms"))
    )
    # Two rules per person: "notify me by email and by SMS as soon as I am paged".
    NotificationRule.objects.bulk_create(
        NotificationRule(person_id=method.person_id, contact_method=method, delay_minutes=0) for method in methods
    )
    expected = 2 * n
    teams = Team.objects.bulk_create(
        Team(name=f"Bench team {i}", slug=f"bench-team-{i}", team_lead=lead) for i, lead in enumerate(leads)
    )
    now = timezone.now()
    incidents = Incident.objects.bulk_create(
        Incident(number=i + 1, title=f"Bench incident {i}", severity=p1, detected_at=now, declared_at=now)
        for i in range(n)
    )
    ReferenceCounter.objects.update_or_create(name="incident", defaults={"value": n})
    Page.objects.bulk_create(
        Page(
            incident=incident,
            severity=p1,
            policy=policy,
            team=team,
            escalation_level=0,  # level 0 has fired; level 1 (the team lead) is the escalation measured
            started_at=now,
            pass_started_at=far - timedelta(minutes=30),
            escalate_at=far,
            acknowledge_due_at=far,
        )
        for incident, team in zip(incidents, teams, strict=True)
    )
    print(f"setup: {n} pages in {time.monotonic() - started:.1f}s", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench-escalation-") as work_dir:
        cluster = Cluster(
            database_url=database_url,
            redis_url=redis_url,
            work_dir=Path(work_dir),
            tick_seconds=args.tick,
            PAGING_SENDER_PARALLELISM=args.sender_concurrency,
            PAGING_RATE_LIMIT_SECONDS=60,
            RELIABILITY_STARTS="",
        )
        try:
            cluster.worker("timers", queues="timers", pool="prefork", concurrency=1)
            cluster.worker(
                "notifications", queues="notifications,default", pool="prefork", concurrency=args.sender_concurrency
            )
            cluster.beat()
            # Spread the deadlines evenly over the next `spread` seconds, starting shortly from now.
            first_due = timezone.now() + timedelta(seconds=3)
            with connection.cursor() as cursor:
                cursor.execute(
                    "WITH ranked AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM paging_page) "
                    "UPDATE paging_page p SET escalate_at = %s + make_interval(secs => ranked.k * %s / %s), "
                    "pass_started_at = %s + make_interval(secs => ranked.k * %s / %s) - interval '30 minutes', "
                    "acknowledge_due_at = %s + interval '1 day' FROM ranked WHERE p.id = ranked.id",
                    [first_due, args.spread, n, first_due, args.spread, n, first_due],
                )
            due_at = dict(Page.objects.values_list("pk", "escalate_at"))
            last_due = max(due_at.values())

            seen: set[str] = set()
            offset = 0

            def delivered() -> int:
                # Reads only what was appended since the last look: the benchmark's own CPU stays small next to
                # the workers' (it shares the two cores with them).
                nonlocal offset
                if cluster.deliveries.exists():
                    with open(cluster.deliveries, "rb") as handle:
                        handle.seek(offset)
                        chunk = handle.read()
                    complete = chunk[: chunk.rfind(b"\n") + 1]
                    offset += len(complete)
                    seen.update(line.split()[2].decode() for line in complete.splitlines() if b":l1:" in line)
                return len(seen)

            remaining = (last_due - timezone.now()).total_seconds() + args.timeout
            try:
                wait_until(lambda: delivered() >= expected, timeout=remaining, interval=1.0, message="all escalations")
            except TimeoutError as error:
                print(error, file=sys.stderr)
            time.sleep(2)  # anything sent twice would show up now
        finally:
            cluster.stop()
        deliveries = [row for row in read_deliveries(cluster.deliveries) if ":l1:" in row[2]]
    load_after = os.getloadavg()[0]
    written_at = {
        key: created.timestamp()
        for key, created in Notification.objects.filter(level=1).values_list("idempotency_key", "created_at")
    }

    counts = Counter(key for _t, _pid, key in deliveries)
    first_delivery: dict[str, float] = {}
    for delivered_at, _pid, key in deliveries:
        first_delivery.setdefault(key, delivered_at)
    lateness, tick_lateness, send_lateness = [], [], []
    for key, delivered_at in first_delivery.items():
        page_id = int(key.split(":")[1])
        lateness.append(delivered_at - due_at[page_id].timestamp())
        tick_lateness.append(written_at[key] - due_at[page_id].timestamp())
        send_lateness.append(delivered_at - written_at[key])
    lost = expected - len(first_delivery)
    duplicated = sum(count - 1 for count in counts.values())
    span = max(first_delivery.values()) - min(d.timestamp() for d in due_at.values()) if first_delivery else 0
    throughput = len(first_delivery) / span if span > 0 else 0.0
    print(
        f"lateness: min={min(lateness):.3f}s max={max(lateness):.3f}s mean={sum(lateness) / len(lateness):.3f}s",
        file=sys.stderr,
    )
    print(
        f"RESULT escalations={n} notifications={expected} lost={lost} duplicated={duplicated} "
        f"lateness_p50_s={percentile(lateness, 0.50):.3f} lateness_p99_s={percentile(lateness, 0.99):.3f} "
        f"throughput_per_s={throughput:.1f} tick_lateness_p99_s={percentile(tick_lateness, 0.99):.3f} "
        f"send_lateness_p99_s={percentile(send_lateness, 0.99):.3f} sender_batch={settings.PAGING_SENDER_BATCH} "
        f"sender_batch_seconds={settings.PAGING_SENDER_BATCH_SECONDS} sender_concurrency={args.sender_concurrency} "
        f"tick_batch={settings.PAGING_TICK_BATCH} "
        f"load_before={load_before:.2f} load_after={load_after:.2f} cores={os.cpu_count()}"
    )
    if not os.environ.get("BENCH_KEEP_DATABASE"):
        psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    return 0 if lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

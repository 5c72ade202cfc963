"""Ingestion audit overhead, A/B inside one run.

The ingestion statement (incidents.alerting.services.group_commit.FAST_SQL: upsert the groups, insert the
events, write the audit record of each group it opens) against the same statement without its audit part, in one
process on one database, alternating variant by variant round after round, so a shared machine's noise hits both
alike. Each statement carries a batch of new keys, like an Alertmanager webhook of 100 alerts (bench/ingest.py's
phase b) or a group commit of concurrent single events. Two measures:

- `statement`: the statement alone, executed directly;
- `request`: whole Alertmanager webhooks (and single PagerDuty events) through the production WSGI application
  (incidentportal.wsgi: the lean webhook handler, parsing, routing, the statement, the JSON answer), the statement
  swapped between rounds.

    .venv/bin/python bench/ingest_audit.py [--rounds 15] [--statements 20] [--batch 100]

Prints one final line:
RESULT statement_ratio=... batch_request_ratio=... single_request_ratio=... (audited / unaudited throughput),
       the same with the audit trail's former full actor index, and the medians
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from support import ADMIN_URL, pg_url, psql  # noqa: E402

BASE = urllib.parse.urlparse(os.environ.get("DATABASE_URL", "")).path.lstrip("/") or "ip_bench"
DB_NAME = f"{BASE}_ingest_audit"


def unaudited(sql: str) -> str:
    """The statement without its audit part: the `a` CTE (the audit INSERT) replaced by one that writes nothing and
    takes the same parameter, so both variants are called alike."""
    start = sql.index("), a AS (")
    end = sql.index(")\nSELECT id, integration_id")
    return sql[:start] + "), a AS (SELECT %s::timestamptz AS unused" + sql[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--statements", type=int, default=20, help="statements per variant and round")
    parser.add_argument("--batch", type=int, default=100, help="new keys per statement")
    args = parser.parse_args()

    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(ADMIN_URL, f"CREATE DATABASE {DB_NAME}")
    os.environ.update(
        DATABASE_URL=pg_url(DB_NAME),
        DJANGO_SETTINGS_MODULE="incidentportal.settings",
        DEBUG="0",
        SECRET_KEY="bench-" + os.urandom(16).hex(),
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1",
        ALERTING_RATE_LIMIT_PER_MINUTE=str(10**9),
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from incidentportal import wsgi
    from incidentportal.db import prepared_cursor
    from incidents.alerting.services import group_commit
    from incidents.alerting.services.integrations import create_integration
    from incidents.audit.models import AuditRecord

    call_command("migrate", verbosity=0)
    integration, key = create_integration(kind="alertmanager", name="audit A/B")
    _pagerduty, pd_key = create_integration(kind="pagerduty", name="audit A/B single")
    variants = {
        "audited": group_commit.FAST_SQL,
        # The same with the audit trail's full actor foreign-key index that migration audit.0005 drops: created
        # before this variant's runs and dropped after them, in the same database.
        "audited_fk_index": group_commit.FAST_SQL,
        "unaudited": unaudited(group_commit.FAST_SQL),
    }

    def old_actor_index(present: bool) -> None:
        with connection.cursor() as cursor:
            if present:
                cursor.execute("CREATE INDEX IF NOT EXISTS bench_audit_actor_fk ON audit_auditrecord (actor_id)")
            else:
                cursor.execute("DROP INDEX IF EXISTS bench_audit_actor_fk")

    counter = iter(range(10**9))

    def rows() -> list[dict]:
        now = timezone.now()
        out = []
        for _ in range(args.batch):
            n = next(counter)
            out.append(
                {
                    "integration_id": integration.pk,
                    "dedup_key": f"ab-{n:09d}",
                    "summary": f"p99 latency high on web-{n}",
                    "source": "prometheus",
                    "severity": "warning",
                    "labels": {"alertname": "HighLatency", "instance": f"web-{n}:9100", "severity": "warning"},
                    "link": "http://prometheus.example.com/graph",
                    "service_id": None,
                    "first_seen_at": now.isoformat(),
                    "occurred_at": now.isoformat(),
                    "payload": {"status": "firing", "fingerprint": f"{n:x}"},
                    "audit_first_seen": now.isoformat(),
                    "audit_actor_id": None,
                    "audit_actor_username": "",
                    "audit_source": "webhook",
                    "audit_request_id": f"req-{n}",
                    "audit_client_request_id": "",
                    "audit_ip": "127.0.0.1",
                }
            )
        return out

    def run(sql: str) -> float:
        batches = [json.dumps(rows()) for _ in range(args.statements)]
        started = time.perf_counter()
        for batch in batches:
            now = timezone.now()
            with prepared_cursor() as cursor:  # autocommit: each statement commits, as a webhook's does
                cursor.execute(sql, [batch, now, now, now])
                cursor.fetchall()
        return args.statements * args.batch / (time.perf_counter() - started)

    def post(path: str, body: bytes, token: str) -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
        }
        status = []
        chunks = wsgi.application(environ, lambda code, headers, exc_info=None: status.append(code))
        b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        if not status or not status[0].startswith("202"):
            raise SystemExit(f"{path} answered {status}")

    def webhook() -> bytes:
        alerts = []
        for _ in range(args.batch):
            n = next(counter)
            alerts.append(
                {
                    "status": "firing",
                    "labels": {"alertname": "HighLatency", "instance": f"web-{n}:9100", "severity": "warning"},
                    "annotations": {"summary": f"p99 latency high on web-{n}"},
                    "startsAt": "2026-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.example.com/graph",
                    "fingerprint": f"{n:x}",
                }
            )
        return json.dumps({"version": "4", "status": "firing", "receiver": "portal", "alerts": alerts}).encode()

    def single() -> bytes:
        n = next(counter)
        event = {"event_action": "trigger", "dedup_key": f"single-{n}", "payload": {"summary": f"disk {n}"}}
        return json.dumps(
            {"routing_key": pd_key, **event, "payload": {**event["payload"], "source": "db-1", "severity": "critical"}}
        ).encode()

    def run_requests(sql: str, kind: str) -> float:
        group_commit.FAST_SQL = sql  # read at call time by run_fast_statement
        try:
            if kind == "batch":
                bodies = [webhook() for _ in range(args.statements)]
                started = time.perf_counter()
                for body in bodies:
                    post("/api/v1/integrations/alertmanager/", body, key)
                return args.statements * args.batch / (time.perf_counter() - started)
            bodies = [single() for _ in range(args.statements * 10)]
            started = time.perf_counter()
            for body in bodies:
                post("/api/v1/integrations/pagerduty/v2/enqueue", body, pd_key)
            return len(bodies) / (time.perf_counter() - started)
        finally:
            group_commit.FAST_SQL = variants["audited"]

    measures = {
        "statement": run,
        "batch_request": lambda sql: run_requests(sql, "batch"),
        "single_request": lambda sql: run_requests(sql, "single"),
    }
    for measure in measures.values():  # warm-up: prepared statements, caches, the handlers' first requests
        for sql in variants.values():
            measure(sql)
    rates = {(measure, name): [] for measure in measures for name in variants}
    for number in range(args.rounds):
        order = list(variants) if number % 2 == 0 else list(reversed(variants))
        for measure, run_measure in measures.items():
            for name in order:
                old_actor_index(name == "audited_fk_index")
                rates[(measure, name)].append(run_measure(variants[name]))
                old_actor_index(False)
        print(
            f"round {number + 1}: "
            + "; ".join(
                f"{measure} " + ", ".join(f"{name} {rates[(measure, name)][-1]:.0f}/s" for name in variants)
                for measure in measures
            ),
            flush=True,
        )
    medians = {pair: statistics.median(values) for pair, values in rates.items()}
    ratios = {measure: medians[(measure, "audited")] / medians[(measure, "unaudited")] for measure in measures}
    before = {measure: medians[(measure, "audited_fk_index")] / medians[(measure, "unaudited")] for measure in measures}
    groups = AuditRecord.objects.filter(object_type="alerting.alertgroup").count()
    connection.close()
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    print(
        f"RESULT statement_ratio={ratios['statement']:.3f} batch_request_ratio={ratios['batch_request']:.3f} "
        f"single_request_ratio={ratios['single_request']:.3f} "
        f"with_fk_index: statement_ratio={before['statement']:.3f} batch_request_ratio={before['batch_request']:.3f} "
        f"single_request_ratio={before['single_request']:.3f} "
        f"statement_rows_per_s={medians[('statement', 'audited')]:.0f}/{medians[('statement', 'unaudited')]:.0f} "
        f"batch_alerts_per_s={medians[('batch_request', 'audited')]:.0f}/"
        f"{medians[('batch_request', 'unaudited')]:.0f} "
        f"single_events_per_s={medians[('single_request', 'audited')]:.0f}/"
        f"{medians[('single_request', 'unaudited')]:.0f} "
        f"rounds={args.rounds} batch={args.batch} audit_records={groups} load={os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

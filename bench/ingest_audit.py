"""Ingestion audit overhead, A/B inside one run.

The ingestion statement (incidents.alerting.services.group_commit.FAST_SQL: upsert the groups, insert the
events, write the audit record of each group it opens) against the same statement without its audit part, in one
process on one database, alternating variant by variant round after round, so a shared machine's noise hits both
alike. Each statement carries a batch of new keys, like an Alertmanager webhook of 100 alerts (bench/ingest.py's
phase b) or a group commit of concurrent single events.

    .venv/bin/python bench/ingest_audit.py [--rounds 15] [--statements 20] [--batch 100]

Prints one final line:
RESULT audited_rows_per_s=... unaudited_rows_per_s=... ratio=... rounds=...
"""

from __future__ import annotations

import argparse
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
    """The statement without its audit part: the `a` CTE (the audit INSERT) cut out."""
    start = sql.index("), a AS (")
    end = sql.index(")\nSELECT id, integration_id")
    return sql[:start] + sql[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--statements", type=int, default=20, help="statements per variant and round")
    parser.add_argument("--batch", type=int, default=100, help="new keys per statement")
    args = parser.parse_args()

    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(ADMIN_URL, f"CREATE DATABASE {DB_NAME}")
    os.environ["DATABASE_URL"] = pg_url(DB_NAME)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from incidentportal.db import prepared_cursor
    from incidents.alerting.services import group_commit
    from incidents.alerting.services.integrations import create_integration
    from incidents.audit.models import AuditRecord

    call_command("migrate", verbosity=0)
    integration, _key = create_integration(kind="alertmanager", name="audit A/B")
    variants = {"audited": group_commit.FAST_SQL, "unaudited": unaudited(group_commit.FAST_SQL)}
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
                cursor.execute(sql, [batch] + [now] * (sql.count("%s") - 1))
                cursor.fetchall()
        return args.statements * args.batch / (time.perf_counter() - started)

    for sql in variants.values():  # warm-up: prepared statements, caches
        run(sql)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for number in range(args.rounds):
        order = list(variants) if number % 2 == 0 else list(reversed(variants))
        for name in order:
            rates[name].append(run(variants[name]))
        print(f"round {number + 1}: " + ", ".join(f"{name} {rates[name][-1]:.0f} rows/s" for name in variants))
    audited, plain = statistics.median(rates["audited"]), statistics.median(rates["unaudited"])
    groups = AuditRecord.objects.filter(object_type="alerting.alertgroup").count()
    connection.close()
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    load = os.getloadavg()[0]
    print(
        f"RESULT audited_rows_per_s={audited:.0f} unaudited_rows_per_s={plain:.0f} ratio={audited / plain:.3f} "
        f"rounds={args.rounds} batch={args.batch} audit_records={groups} load={load:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

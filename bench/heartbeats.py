"""Heartbeat monitor benchmark.

(a) Pings: the portal under gunicorn with production settings (DEBUG=0, PostgreSQL in a dedicated database, Redis,
    the production per-heartbeat rate limit) on 127.0.0.1; wrk pings 10,000 heartbeat URLs round-robin with 16
    connections for 3 rounds (median reported). With --baseline DIR, the same rounds run against another checkout
    (the code before a change) alternately in the same run, and the ratio is printed (`speedup`). Afterwards every
    200 must be a counted ping in the database (`lost`).
(b) Missed heartbeats: 10,000 heartbeats whose deadlines fall due over 30 s, with real Celery beat and a `timers`
    worker (the production tick); lateness is the time from a deadline to its alert group being written. Every
    heartbeat must alert exactly once (`lost`, `doubled`).

    .venv/bin/python bench/heartbeats.py [--monitors 10000] [--ping-seconds 8] [--rounds 3] [--baseline DIR]
                                         [--skip-missed]

Prints one final line:
RESULT pings_per_s=... ping_p99_ms=... lost_pings=0 non2xx=0 [baseline_pings_per_s=... baseline_ping_p99_ms=...
       speedup=...] monitors=10000 alert_lateness_p50_s=... alert_lateness_p99_s=... lost_alerts=0 doubled_alerts=0
       load1=... cpus=...
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

from support import ADMIN_URL, free_port, pg_url, psql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
DB_NAME = "ip_bench_heartbeats"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


WRK_SCRIPT = r"""
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  n = tid * 7919
end
function request()
  n = n + 1
  return wrk.format("GET", "/api/v1/heartbeats/" .. ids[(n % #ids) + 1] .. "/")
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d duration_us=%d\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


def run_wrk(port: int, ids_file: str, seconds: int, concurrency: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        out = subprocess.run(
            ["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s", "-s", script.name,
             f"http://127.0.0.1:{port}"],
            check=True, capture_output=True, text=True, env=dict(os.environ, BENCH_IDS=ids_file), timeout=seconds + 60,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    line = next(line for line in out.splitlines() if line.startswith("WRK "))
    return {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}


@contextmanager
def gunicorn_at(env: dict, root: Path):
    """The portal under gunicorn (production settings) from the checkout at `root`; yields its port."""
    port = free_port()
    env = dict(env, SITE_URL=f"http://127.0.0.1:{port}", ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="0")
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "incidentportal.wsgi:application", "-c", "python:incidentportal.gunicorn",
         "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=root, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:  # answered by a worker (the master accepts connections before its workers have imported Django)
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/heartbeats/{uuid.uuid4()}/", timeout=5)  # noqa: S310
            except urllib.error.HTTPError:
                break  # 404: served
            except OSError:
                time.sleep(0.3)
        else:
            raise SystemExit(f"gunicorn did not start from {root}")
        yield port
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)


def phase_pings(env: dict, ids: list[str], args) -> dict:
    """The measured rounds; with --baseline, each round is run against the baseline checkout too, alternately
    (baseline, this checkout, baseline, ...), so both see the same machine and the ratio is meaningful."""
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    from incidents.alerting.models import Heartbeat

    roots = {"after": ROOT}
    if args.baseline:
        roots = {"before": Path(args.baseline).resolve(), "after": ROOT}
    results: dict[str, list[dict]] = {name: [] for name in roots}
    answered = stored_before = 0
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as ids_file:
        ids_file.write("\n".join(ids) + "\n")
    try:
        with ExitStack() as stack:
            ports = {name: stack.enter_context(gunicorn_at(env, root)) for name, root in roots.items()}
            for port in ports.values():
                run_wrk(port, ids_file.name, 3, args.concurrency)  # warm-up: every worker connects and imports
            stored_before = sum(Heartbeat.objects.values_list("ping_count", flat=True))
            for _ in range(args.rounds):
                for name, port in ports.items():
                    result = run_wrk(port, ids_file.name, args.ping_seconds, args.concurrency)
                    results[name].append(result)
                    answered += result["requests"] - result["non2xx"] - result["socket_errors"]
    finally:
        os.unlink(ids_file.name)
    stored = sum(Heartbeat.objects.values_list("ping_count", flat=True)) - stored_before
    out = {
        # More stored than answered: pings in flight when wrk stopped. Fewer: a 200 whose ping was not stored.
        "lost_pings": max(0, answered - stored),
    }
    for name, rounds in results.items():
        rates = [(r["requests"] - r["non2xx"]) / (r["duration_us"] / 1e6) for r in rounds]
        print(f"pings ({name}): rounds {[round(rate) for rate in rates]}/s, wrk {rounds}, "
              f"non2xx {[r['non2xx'] for r in rounds]}", file=sys.stderr)  # fmt: skip
        out[name] = {
            "pings_per_s": statistics.median(rates),
            "ping_p99_ms": statistics.median(r["p99_us"] for r in rounds) / 1000,
            "non2xx": sum(r["non2xx"] for r in rounds),
        }
    return out


def phase_missed(database_url: str, args) -> dict:
    # Imported here, not at the top: this script sets up Django (settings, database) first.
    from django.db import connection
    from django.utils import timezone

    from incidents.alerting.models import AlertGroup, Heartbeat
    from tests.reliability.harness import Cluster, wait_until

    Heartbeat.objects.all().delete()
    n = args.monitors
    now = timezone.now()
    Heartbeat.objects.bulk_create(
        Heartbeat(name=f"job {i}", period=timedelta(minutes=5), grace=timedelta(0), state="up", last_ping_at=now)
        for i in range(n)
    )
    with tempfile.TemporaryDirectory(prefix="bench-heartbeats-") as work_dir:
        cluster = Cluster(
            database_url=database_url, redis_url=REDIS_URL, work_dir=Path(work_dir), tick_seconds=args.tick,
            RELIABILITY_STARTS="",
        )  # fmt: skip
        try:
            cluster.worker("timers", queues="timers", pool="prefork", concurrency=1)
            cluster.beat()
            first_due = timezone.now() + timedelta(seconds=5)
            with connection.cursor() as cursor:
                cursor.execute(
                    "WITH ranked AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM alerting_heartbeat) "
                    "UPDATE alerting_heartbeat h SET due_at = %s + make_interval(secs => ranked.k * %s / %s) "
                    "FROM ranked WHERE h.id = ranked.id",
                    [first_due, args.spread, n],
                )
            last_due = first_due + timedelta(seconds=args.spread)
            remaining = (last_due - timezone.now()).total_seconds() + 120
            try:
                wait_until(
                    lambda: Heartbeat.objects.filter(alert_open=True).count() >= n,
                    timeout=remaining,
                    interval=1.0,
                    message="every missed heartbeat alerted",
                )
            except TimeoutError as error:
                print(error, file=sys.stderr)
            time.sleep(2 * args.tick + 1)  # a second alert for the same heartbeat would show up now
        finally:
            cluster.stop()
    rows = list(Heartbeat.objects.filter(alerted_at__isnull=False).values_list("due_at", "alerted_at"))
    lateness = [(alerted - due).total_seconds() for due, alerted in rows]
    groups = AlertGroup.objects.filter(dedup_key__startswith="heartbeat:").count()
    return {
        "alert_lateness_p50_s": percentile(lateness, 0.50),
        "alert_lateness_p99_s": percentile(lateness, 0.99),
        "lost_alerts": n - len(rows),
        "doubled_alerts": max(0, groups - len(rows)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    # The production rate limit (120 a minute per heartbeat) applies, and its cost is measured: spread over 10,000
    # heartbeats, even 10,000 pings/s stay under it (a refusal would show as non2xx).
    parser.add_argument("--ping-heartbeats", type=int, default=10_000)
    parser.add_argument("--ping-seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--spread", type=float, default=30.0, help="missed deadlines fall due within this many s")
    parser.add_argument("--tick", type=float, default=2.0, help="TIMER_TICK_SECONDS (the production default)")
    parser.add_argument(
        "--baseline",
        help="a checkout of the code to compare with (git worktree add /tmp/base <commit>): its ping "
        "rounds alternate with this checkout's, in the same run, against the same database",
    )
    parser.add_argument("--skip-missed", action="store_true", help="only the ping phase")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed (make wrk)", file=sys.stderr)
        return 2

    database_url = pg_url(DB_NAME)
    psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(ADMIN_URL, f"CREATE DATABASE {DB_NAME}")
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="incidentportal.settings",
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        LOG_LEVEL="WARNING",
        DB_CONN_MAX_AGE="600",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("TESTING", None)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env, TESTING="1")

    # Imported here, not at the top: this script sets up Django (settings, database) first.
    import django

    django.setup()
    from django.utils import timezone

    from incidents.alerting.models import Heartbeat

    now = timezone.now()
    beats = Heartbeat.objects.bulk_create(
        Heartbeat(name=f"ping {i}", period=timedelta(hours=1), state="up", last_ping_at=now)
        for i in range(args.ping_heartbeats)
    )
    pings = phase_pings(env, [str(beat.public_id) for beat in beats], args)
    missed = {"alert_lateness_p50_s": float("nan"), "alert_lateness_p99_s": float("nan"), "lost_alerts": 0,
              "doubled_alerts": 0}  # fmt: skip
    if not args.skip_missed:
        missed = phase_missed(database_url, args)
    after = pings["after"]
    compared = ""
    if "before" in pings:
        before = pings["before"]
        compared = (
            f"baseline_pings_per_s={before['pings_per_s']:.0f} baseline_ping_p99_ms={before['ping_p99_ms']:.1f} "
            f"speedup={after['pings_per_s'] / before['pings_per_s']:.2f} "
        )
    print(
        f"RESULT pings_per_s={after['pings_per_s']:.0f} ping_p99_ms={after['ping_p99_ms']:.1f} "
        f"lost_pings={pings['lost_pings']} non2xx={after['non2xx']} {compared}monitors={args.monitors} "
        f"alert_lateness_p50_s={missed['alert_lateness_p50_s']:.3f} "
        f"alert_lateness_p99_s={missed['alert_lateness_p99_s']:.3f} "
        f"lost_alerts={missed['lost_alerts']} doubled_alerts={missed['doubled_alerts']} "
        f"load1={os.getloadavg()[0]:.2f} cpus={os.cpu_count()}"
    )
    if not os.environ.get("BENCH_KEEP_DATABASE"):
        # Imported here, not at the top: this script sets up Django (settings, database) first.
        from django.db import connections

        connections.close_all()
        psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    ok = pings["lost_pings"] == 0 and missed["lost_alerts"] == 0 and missed["doubled_alerts"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Scenario 3 of bench/cluster.py: an alert storm through the balancer (bench/support/storm_sender.py processes),
alert-group pages of the web UI probed by a signed-in person while it lasts, and an unrelated P0 declared half-way
whose paging must not wait behind the storm."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.db.models import Count
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice

from incidents.alerting.models import AlertEvent, AlertGroup
from incidents.alerting.services.integrations import create_integration
from incidents.models import Incident, Service
from oncall.paging.models import Page
from tests.factories import ResponderFactory, declare
from tests.paging.factories import paged_team
from tests.reliability.backends import read_deliveries

from .cluster_scenarios import LATENESS_TARGET, load_average, log, sleep_until
from .traffic import LockWatch, Probe, percentile

SENDER = Path(__file__).resolve().parent / "storm_sender.py"
UI_TARGET = 0.200  # seconds, p95 of the alert-group pages


def signed_in_cookie(username: str = "cluster-admin") -> str:
    """A staff member's session, second factor verified (production requires one for staff)."""
    user = get_user_model().objects.create_superuser(
        username, f"{username}@cluster.example.com", secrets.token_urlsafe(24)
    )
    device = StaticDevice.objects.create(user=user, name="cluster", confirmed=True)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def p0_lateness(deliveries, page: Page, since: float) -> tuple[int, float]:
    """(notifications of level 0 delivered, seconds from `since` to the last of them)."""
    prefix = f"page:{page.pk}:l0:"
    times: dict[str, float] = {}
    for at, _pid, key in read_deliveries(deliveries):
        if key.startswith(prefix):
            times.setdefault(key, at)
    if not times:
        return 0, float("nan")
    return len(times), max(times.values()) - since


def storm(bed, args) -> dict:
    n_services = args.services
    log(f"storm: {args.alerts} alerts in {args.seconds:.0f}s, {args.keys} keys, {n_services} services, "
        f"{args.senders} senders x {args.batch} alerts a request")  # fmt: skip
    services = Service.objects.bulk_create(
        Service(name=f"Storm service {i}", slug=f"storm-{i:02d}") for i in range(n_services)
    )
    slugs = [service.slug for service in services]
    senders = []
    for index in range(args.senders):
        kind = "alertmanager" if index % 2 == 0 else "generic"
        _integration, key = create_integration(kind=kind, name=f"storm sender {index}", default_action="declare")
        senders.append((index, kind, key))
    target = paged_team(name="Unrelated", oncall_channels=("email", "sms"))
    declarer = ResponderFactory()
    cookie = signed_in_cookie()
    lb = bed.net.addr("lb")
    list_pages = [reverse("admin:alerting_alertgroup_changelist"), "/api/v1/alert-groups/"]
    # The same pages before the storm, for a ratio on a machine whose absolute speed depends on its other load.
    quiet = Probe(lb, list_pages, cookie, interval=0.2, seconds=6)
    quiet.start()
    quiet.join(30)
    quiet_ms = [seconds for _t, _path, status, seconds in quiet.samples if status == 200]
    procs = []
    for index, kind, key in senders:
        arguments = {
            "host": lb,
            "path": f"/api/v1/integrations/{kind}/",
            "kind": kind,
            "key": key,
            "index": index,
            "senders": args.senders,
            "alerts": args.alerts,
            "keys": args.keys,
            "services": slugs,
            "batch": args.batch,
            "seconds": args.seconds,
            "connections": 4,
            "prefix": f"s{index}-",
        }
        procs.append(
            subprocess.Popen([sys.executable, str(SENDER), json.dumps(arguments)], stdout=subprocess.PIPE, text=True)  # noqa: S603
        )
    t0 = time.time() + 0.5
    list_probe = Probe(lb, list_pages, cookie, interval=0.2, seconds=args.seconds + 30)
    list_probe.start()
    locks = LockWatch(bed.database_url, args.seconds + 60)
    locks.start()
    detail_probe = None
    sleep_until(t0 + min(10.0, args.seconds / 4))
    group = AlertGroup.objects.filter(integration__name__startswith="storm sender").order_by("id").first()
    incident = Incident.objects.filter(services__slug__startswith="storm-").order_by("id").first()
    detail_pages = [p for p in (
        reverse("admin:alerting_alertgroup_change", args=[group.pk]) if group else None,
        incident.get_absolute_url() if incident else None,
    ) if p]  # fmt: skip
    if detail_pages:
        detail_probe = Probe(lb, detail_pages, cookie, interval=0.3, seconds=args.seconds + 30)
        detail_probe.start()
    sleep_until(t0 + args.seconds / 2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        locks.watched_pid = cursor.fetchone()[0]  # what the P0's declaration waits for
    declare_started = time.monotonic()
    p0 = declare(by=declarer, level="P0", services=[target.service], title="Payments down (unrelated to the storm)")
    declare_seconds = time.monotonic() - declare_started
    log(f"declared an unrelated P0 in {declare_seconds:.2f}s")
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=args.seconds + 150)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        outputs.append(json.loads(out.strip().splitlines()[-1]) if out.strip() else {"accepted": 0, "alerts": 0})
    storm_end = time.time()
    for line in locks.stop():
        log(f"lock wait {line}")
    list_probe.stop()
    if detail_probe:
        detail_probe.stop()
    page = Page.objects.select_related("incident").get(incident=p0)
    deadline = time.time() + 60
    while time.time() < deadline and p0_lateness(bed.deliveries, page, 0)[0] < 2:
        time.sleep(1)
    p0_sent, p0_late = p0_lateness(bed.deliveries, page, page.incident.declared_at.timestamp())

    accepted = sum(o.get("accepted", 0) for o in outputs)
    accepted_keys = sum(o.get("accepted_keys", 0) for o in outputs)  # each key belongs to one sender
    sent = sum(o.get("alerts", 0) for o in outputs)
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    for o in outputs:
        for status, n in o.get("statuses", {}).items():
            statuses[status] = statuses.get(status, 0) + n
        latencies += o.get("latencies", [])
    storm_integrations = {"integration__name__startswith": "storm sender"}
    stored = AlertEvent.objects.filter(**storm_integrations).count()
    groups = AlertGroup.objects.filter(**storm_integrations).count()
    groups_doubled = (
        AlertGroup.objects.filter(**storm_integrations)
        .values("integration", "dedup_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    per_service = (
        Incident.objects.filter(services__in=services).values("services").annotate(n=Count("id", distinct=True))
    )
    most = max((row["n"] for row in per_service), default=0)
    incidents = Incident.objects.filter(services__in=services).distinct().count()
    samples = [s for s in list_probe.samples + (detail_probe.samples if detail_probe else []) if s[0] <= storm_end]
    ui = [seconds for _t, _path, status, seconds in samples if status == 200]
    ui_bad = sum(1 for s in samples if s[2] != 200)
    span = max((o.get("seconds", 0) for o in outputs), default=0)
    result = {
        "scenario": "storm",
        "alerts": sent,
        "accepted": accepted,
        "stored": stored,
        "lost": max(0, accepted - stored),
        "unsent_by_deadline": sent - accepted,
        "alerts_per_s": f"{accepted / span:.0f}" if span else "0",
        "groups": groups,
        "keys_with_two_groups": groups_doubled,
        "incidents": incidents,
        "max_incidents_per_service": most,
        "request_p50_ms": f"{percentile(latencies, 0.5) * 1000:.0f}",
        "request_p99_ms": f"{percentile(latencies, 0.99) * 1000:.0f}",
        "answers": "/".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
        "ui_requests": len(samples),
        "ui_non200": ui_bad,
        "ui_answers": "/".join(f"{k}:{v}" for k, v in sorted(Counter(s[2] for s in samples).items())),
        "ui_p50_ms": f"{percentile(ui, 0.5) * 1000:.0f}",
        "ui_p95_ms": f"{percentile(ui, 0.95) * 1000:.0f}",
        "ui_p95_ms_before_storm": f"{percentile(quiet_ms, 0.95) * 1000:.0f}",
        "p0_notifications": p0_sent,
        "p0_declare_s": f"{declare_seconds:.3f}",
        "p0_paging_lateness_s": f"{p0_late:.3f}",
    }
    # Correct: every accepted alert stored, one incident a service at most, one group per dedup key, the P0
    # paged, no 500. Alerts the senders could not get accepted by their deadline are capacity (targets_met).
    result["correct"] = int(
        stored >= accepted and most <= 1 and groups >= accepted_keys and groups_doubled == 0 and p0_sent >= 2
        and statuses.get("500", 0) == 0
    )  # fmt: skip
    result["targets_met"] = int(accepted == sent and percentile(ui, 0.95) <= UI_TARGET and p0_late <= LATENESS_TARGET)
    result["load"] = load_average()
    return result

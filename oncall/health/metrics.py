"""Prometheus metrics (prometheus_client). Request counts and durations are counted in-process by
RequestMetricsMiddleware; everything about paging, timers and webhooks is read from the database at scrape time
(the database is the one place every process writes), so any web process answers for the whole portal.

With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (an empty directory, cleared at start): the request
metrics of all workers are then summed (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from incidents.alerting.models import IntegrationError
from oncall.paging.models import Notification, Page

from . import checks

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
LATENESS_WINDOW = timedelta(minutes=15)
LATENESS_SAMPLE = 5000
QUANTILES = (0.5, 0.9, 0.99, 1.0)

REQUESTS = Counter(
    "portal_http_requests", "HTTP requests answered, by URL name, method and status.", ["handler", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL name.",
    ["handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        handler = (match.view_name or "unnamed") if match else "unmatched"
        method = request.method if request.method in METHODS else "other"
        REQUESTS.labels(handler, method, str(response.status_code)).inc()
        REQUEST_SECONDS.labels(handler).observe(time.perf_counter() - started)
        return response


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


class PortalCollector:
    """Read at scrape time from the database."""

    def describe(self):
        return []

    def collect(self):
        now = timezone.now()
        healthy, report = checks.report()
        up = GaugeMetricFamily("portal_health_check_ok", "1 when the /healthz check passes.", labels=["check"])
        for name, check in report["checks"].items():
            up.add_metric([name], 1.0 if check["ok"] else 0.0)
        yield up
        yield GaugeMetricFamily("portal_healthy", "1 when /healthz answers 200.", value=1.0 if healthy else 0.0)
        if not report["checks"]["database"]["ok"]:
            return

        ages = GaugeMetricFamily(
            "portal_timer_last_tick_age_seconds", "Seconds since each timer last ran.", labels=["timer"]
        )
        for name, timer in report["checks"]["timers"].get("timers", {}).items():
            if "age_seconds" in timer:
                ages.add_metric([name], timer["age_seconds"])
        yield ages

        outbox = report["checks"]["outbox"]
        yield GaugeMetricFamily(
            "portal_paging_notifications_due_unsent",
            "Page notifications whose time has come and that are not sent yet.",
            value=outbox.get("due_unsent", 0),
        )
        yield GaugeMetricFamily(
            "portal_paging_oldest_due_unsent_seconds",
            "How long the oldest due, unsent page notification has waited.",
            value=outbox.get("oldest_age_seconds", 0.0),
        )

        overdue = Page.objects.filter(state__in=Page.OPEN_STATES, escalate_at__lte=now).aggregate(
            count=Count("id"), oldest=Min("escalate_at")
        )
        yield GaugeMetricFamily(
            "portal_paging_escalations_overdue", "Open pages whose next escalation is due now.", value=overdue["count"]
        )
        yield GaugeMetricFamily(
            "portal_paging_escalation_lateness_seconds",
            "How late the most overdue escalation is (0 when none is due).",
            value=(now - overdue["oldest"]).total_seconds() if overdue["oldest"] else 0.0,
        )

        sent = list(
            Notification.objects.filter(sent_at__gte=now - LATENESS_WINDOW, scheduled_for__isnull=False)
            .order_by("-sent_at")
            .values_list("scheduled_for", "sent_at")[:LATENESS_SAMPLE]
        )
        lateness = [max((sent_at - due).total_seconds(), 0.0) for due, sent_at in sent]
        family = GaugeMetricFamily(
            "portal_paging_send_lateness_seconds",
            "Lateness of page notifications sent in the last 15 minutes (sent minus due), by quantile.",
            labels=["quantile"],
        )
        for q in QUANTILES:
            family.add_metric([str(q)], _quantile(lateness, q))
        yield family
        yield GaugeMetricFamily(
            "portal_paging_sent_recently", "Page notifications sent in the last 15 minutes.", value=len(sent)
        )

        open_pages = Page.objects.filter(state__in=Page.OPEN_STATES).aggregate(
            count=Count("id"), oldest=Min("started_at")
        )
        yield GaugeMetricFamily(
            "portal_paging_unacknowledged_pages", "Pages nobody has acknowledged yet.", value=open_pages["count"]
        )
        yield GaugeMetricFamily(
            "portal_paging_oldest_unacknowledged_page_seconds",
            "Age of the oldest unacknowledged page (0 when none).",
            value=(now - open_pages["oldest"]).total_seconds() if open_pages["oldest"] else 0.0,
        )

        errors = CounterMetricFamily(
            "portal_webhook_errors",
            "Refused webhook requests recorded, by integration and kind.",
            labels=["integration", "kind"],
        )
        rows = IntegrationError.objects.values("integration__name", "kind").annotate(n=Count("id")).order_by()
        for row in rows:
            errors.add_metric([row["integration__name"] or "(unknown)", row["kind"]], row["n"])
        yield errors


class _ProcessMetrics:
    """This process's own metrics (requests, Python runtime), when not in multiprocess mode."""

    def collect(self):
        yield from REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: this process's (or, in multiprocess mode, every worker's) request metrics and
    the database-backed portal metrics."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    registry.register(PortalCollector())
    return registry

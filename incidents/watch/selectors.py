"""Reads for the dashboard card and the service page."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Max, Q
from django.utils import timezone

from incidents.models import Incident, Service, TimelineEntry

from .models import MonitoredCertificate

EXPIRING_WITHIN = timedelta(days=30)


def expiring_certificates(*, now=None, within: timedelta = EXPIRING_WITHIN) -> list[MonitoredCertificate]:
    """Endpoints whose certificate expires within `within` or is invalid, soonest first (one query)."""
    now = now or timezone.now()
    rows = MonitoredCertificate.objects.select_related("service").filter(not_after__lte=now + within) | (
        MonitoredCertificate.objects.select_related("service").filter(chain_valid=False)
    )
    return [_with_days_left(row, now) for row in rows.order_by("not_after", "hostname")]


def certificates_of(service, *, now=None) -> list[MonitoredCertificate]:
    now = now or timezone.now()
    return [_with_days_left(row, now) for row in service.certificates.order_by("hostname", "port")]


def _with_days_left(row: MonitoredCertificate, now) -> MonitoredCertificate:
    row.days_left = None if row.not_after is None else int((row.not_after - now).total_seconds() // 86400)
    return row


def certificates_due(*, now=None) -> bool:
    """Whether the daily certificate check has work: an endpoint not yet read, one past its next check, or a service
    HTTPS health URL not yet watched (two cheap queries)."""
    now = now or timezone.now()
    if MonitoredCertificate.objects.filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now)).exists():
        return True
    watched = MonitoredCertificate.objects.values_list("service_id", flat=True)
    return Service.objects.filter(health_check_url__startswith="https://").exclude(pk__in=watched).exists()


def last_timeline_id(incident: Incident) -> int:
    """The incident's newest timeline entry id (0 when none): entries written later have larger ids."""
    return TimelineEntry.objects.filter(incident=incident).aggregate(last=Max("id"))["last"] or 0

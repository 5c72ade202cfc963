"""Triage on declaration (and on demand) and the daily certificate check.

Triage runs every active probe of the incident's services concurrently, each bounded by its own timeout, and
writes one timeline entry per service with each result. It runs in a worker after the declaration committed, so
a probe that hangs never delays declaring.

The certificate check reads each monitored endpoint's certificate. At 30, 14, 7 and 1 days left, and when expired or
invalid, it opens an alert group through the "Certificate watch" integration (its routing rules decide: seeded to
attach at 30 and 14 days, declare a P2 at 7 and 1, a P1 when expired or invalid); an expired certificate's incident
gets the "SSL Certificate Expired" runbook. A renewed certificate resolves the alert.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidentportal.celery import registered_task
from incidents import access, timeline
from incidents.alerting.models import AlertGroup, Integration, IntegrationKind, RouteAction, RoutingRule, Severity
from incidents.alerting.parsers import AlertEventIn
from incidents.alerting.services.ingestion import ingest_alert_events
from incidents.errors import PermissionDenied
from incidents.models import Incident, Runbook, Service, SeverityPolicy
from incidents.services.checklist import attach_runbook

from .certificates import read_certificate
from .models import MonitoredCertificate, Probe
from .probes import ProbeResult, run_probe

log = logging.getLogger(__name__)

CERTIFICATE_INTEGRATION = "Certificate watch"
EXPIRED_RUNBOOK = "ssl-certificate-expired"
STAGES = (30, 14, 7, 1)  # days left at which a warning is sent; 0 is expired or invalid
STAGE_SEVERITY = {
    30: Severity.WARNING,
    14: Severity.WARNING,
    7: Severity.ERROR,
    1: Severity.ERROR,
    0: Severity.CRITICAL,
}
CHECK_EVERY = timedelta(days=1)
MAX_PARALLEL_PROBES = 16


# --- Triage --------------------------------------------------------------------------------------------------------


def probes_for(incident: Incident) -> list[Probe]:
    return list(
        Probe.objects.filter(service__in=incident.services.all(), is_active=True)
        .select_related("service")
        .order_by("service__name", "position", "id")
    )


def request_triage(*, incident: Incident, by) -> list[Probe]:
    """ "Run triage" from the incident page or the API: the same permission rule as running it, then the probes run in
    a worker after this transaction commits (a hanging probe never holds a web worker). The results entry on the
    timeline names who asked. Returns the probes that will run (none: nothing is queued)."""
    if not access.can_respond(by):
        raise PermissionDenied("You need the responder role to run triage.")
    probes = probes_for(incident)
    if probes:
        task = registered_task("incidents.watch.tasks.run_triage")
        transaction.on_commit(lambda: task.delay(incident.pk, by_id=by.pk))
    return probes


def run_triage(*, incident: Incident, by=None) -> int:
    """Run the probes and write one timeline entry per service. Returns the number of entries written."""
    if by is not None and not access.can_respond(by):
        raise PermissionDenied("You need the responder role to run triage.")
    probes = probes_for(incident)
    if not probes:
        return 0
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_PROBES, len(probes))) as pool:
        results = list(pool.map(_safe_run, probes))
    by_service: dict = {}
    for probe, result in zip(probes, results, strict=True):
        by_service.setdefault(probe.service, []).append(result)
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        timeline.record_all(
            [
                timeline.triage_results(incident, service=service, results=rows, by=by)
                for service, rows in by_service.items()
            ]
        )
    return len(by_service)


def _safe_run(probe: Probe) -> ProbeResult:
    try:
        return run_probe(probe)
    except Exception as error:  # a bug in one probe must not lose the others' evidence
        log.exception("probe %s failed", probe.pk)
        return ProbeResult(probe.name, False, f"the probe could not run: {type(error).__name__}")


# --- Certificate watch ---------------------------------------------------------------------------------------------


def certificate_integration() -> Integration:
    """The integration certificate alerts come through, seeded with the guide's routing (editable in the admin)."""
    integration, created = Integration.objects.get_or_create(
        name=CERTIFICATE_INTEGRATION,
        defaults={"kind": IntegrationKind.CERTIFICATE, "default_action": RouteAction.ATTACH},
    )
    if created:
        levels = {policy.level: policy for policy in SeverityPolicy.objects.filter(level__in=["P1", "P2"])}
        RoutingRule.objects.bulk_create(
            [
                RoutingRule(integration=integration, position=0, match_severity=Severity.CRITICAL,
                            severity_policy=levels.get("P1"), action=RouteAction.DECLARE),
                RoutingRule(integration=integration, position=1, match_severity=Severity.ERROR,
                            severity_policy=levels.get("P2"), action=RouteAction.DECLARE),
            ]
        )  # fmt: skip
    return integration


def stage_for(*, not_after: datetime | None, chain_valid: bool | None, now: datetime) -> int | None:
    if chain_valid is False:
        return 0
    if not_after is None:
        return None
    days_left = (not_after - now).total_seconds() / 86400
    if days_left <= 0:
        return 0
    for stage in reversed(STAGES):  # 1, 7, 14, 30
        if days_left <= stage:
            return stage
    return None


def endpoints_of(service) -> list[tuple[str, int]]:
    """The service's HTTPS health URL, if any (its extra hostnames are MonitoredCertificate rows)."""
    parts = urlsplit(service.health_check_url or "")
    if parts.scheme == "https" and parts.hostname:
        return [(parts.hostname, parts.port or 443)]
    return []


def sync_monitored_certificates() -> None:
    for service in Service.objects.exclude(health_check_url=""):
        for hostname, port in endpoints_of(service):
            MonitoredCertificate.objects.get_or_create(service=service, hostname=hostname, port=port)


def _summary(certificate: MonitoredCertificate, stage: int, now: datetime) -> str:
    name = f"{certificate.hostname}:{certificate.port}" if certificate.port != 443 else certificate.hostname
    if certificate.chain_valid is False and (certificate.not_after is None or certificate.not_after > now):
        return f"TLS certificate of {name} is invalid ({certificate.error.removeprefix('certificate invalid: ')})"
    if stage == 0:
        return f"TLS certificate of {name} has expired"
    days = max(0, int((certificate.not_after - now).total_seconds() // 86400))
    return f"TLS certificate of {name} expires in {days} day{'s' if days != 1 else ''}"


def _event(certificate: MonitoredCertificate, action: str, stage: int, summary: str, now: datetime) -> AlertEventIn:
    return AlertEventIn(
        action=action,
        dedup_key=f"{certificate.dedup_key}:{stage}",
        summary=summary,
        severity=STAGE_SEVERITY[stage],
        source="certificate-watch",
        labels={"hostname": certificate.hostname, "port": str(certificate.port), "days_left_stage": str(stage)},
        occurred_at=now,
        service_slug=certificate.service.slug,
    )


def check_certificate(
    certificate: MonitoredCertificate, *, now: datetime | None = None, timeout: float = 5.0
) -> int | None:
    """Read one endpoint's certificate and alert or recover. Returns the stage it is at (None: healthy)."""
    reading = read_certificate(certificate.hostname, certificate.port, timeout=timeout)
    now = now or timezone.now()
    with transaction.atomic():
        certificate = (
            MonitoredCertificate.objects.select_for_update(of=("self",))
            .select_related("service")
            .get(pk=certificate.pk)
        )
        certificate.last_checked_at = now
        certificate.next_check_at = now + CHECK_EVERY
        certificate.error = reading.error
        if reading.chain_valid is None:
            # Unreachable: say so on the endpoint, alert nothing (the service's own probes and alerts cover that).
            certificate.save(update_fields=["last_checked_at", "next_check_at", "error"])
            return certificate.alerted_stage
        certificate.not_after = reading.not_after
        certificate.chain_valid = reading.chain_valid
        stage = stage_for(not_after=reading.not_after, chain_valid=reading.chain_valid, now=now)
        previous = certificate.alerted_stage
        integration = certificate_integration()
        events = []
        if previous is not None and (stage is None or stage < previous):
            events.append(_event(certificate, "resolve", previous, f"{certificate.hostname}: moved on", now))
        if stage is not None and (previous is None or stage < previous):
            events.append(_event(certificate, "trigger", stage, _summary(certificate, stage, now), now))
        if events:
            outcomes = ingest_alert_events(integration=integration, events=events)
            if stage == 0:
                opened = [o.group_id for o in outcomes if o.action == "trigger" and o.group_id]
                _attach_expired_runbook(opened)
        certificate.alerted_stage = stage
        certificate.save(
            update_fields=["last_checked_at", "next_check_at", "error", "not_after", "chain_valid", "alerted_stage"]
        )
        return stage


def _attach_expired_runbook(group_ids: list[int]) -> None:
    runbook = Runbook.objects.filter(slug=EXPIRED_RUNBOOK).first()
    if runbook is None:
        return
    for group in AlertGroup.objects.filter(pk__in=group_ids, incident__isnull=False).select_related("incident"):
        if not group.incident.runbook_links.filter(runbook=runbook).exists():
            attach_runbook(incident=group.incident, runbook=runbook, by=None)


def check_due_certificates(*, now: datetime | None = None, batch: int = 50) -> int:
    """The daily check (a tick claims endpoints whose next_check_at has passed; new ones are checked at once)."""
    sync_monitored_certificates()
    now = now or timezone.now()
    due = list(
        MonitoredCertificate.objects.filter(Q(next_check_at__isnull=True) | Q(next_check_at__lte=now)).order_by("id")[
            :batch
        ]
    )
    for certificate in due:
        try:
            check_certificate(certificate, now=now)
        except Exception:
            log.exception("certificate check of %s failed", certificate)
    return len(due)

"""An incident's lifecycle: declared, acknowledged, its status moved along (resolved, re-opened, closed) and its
severity changed. Each change publishes its typed event (incidents/lifecycle.py) for the apps that subscribe."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .. import access, lifecycle, numbering, timeline
from ..errors import DomainError, InvalidTransition, PermissionDenied
from ..models import (
    ALLOWED_TRANSITIONS,
    ChecklistItem,
    ChecklistPhase,
    ChecklistTemplateItem,
    DetectionSource,
    Incident,
    Role,
    Runbook,
    Service,
    SeverityPolicy,
    Status,
)
from .checklist import link_runbook, tick_facts
from .roles import assign_holder
from .rules import check_detected_at, ensure_responder, lock_incident, require_responder


@transaction.atomic
def declare_incident(
    *,
    title: str,
    severity: SeverityPolicy,
    by,
    summary: str = "",
    services: Iterable[Service] = (),
    detection_source: str = DetectionSource.TEAM_MEMBER,
    impact: str = "",
    users_affected_percent=None,
    is_restricted: bool = False,
    detected_at: datetime | None = None,
    incident_commander=None,
    runbook: Runbook | None = None,
) -> Incident:
    """Create an incident with a new INC number (unique and increasing; a number a rolled-back declaration took
    stays unused), the guide's checklists copied in, the Incident Commander assigned (the declarer unless someone
    else is named) and its response and update deadlines set."""
    require_responder(by)
    title = (title or "").strip()
    if not title:
        raise DomainError("Give the incident a short title.", field="title")
    if detection_source not in DetectionSource.values:
        raise DomainError(f"Unknown detection source {detection_source!r}.", field="detection_source")
    now = timezone.now()
    detected_at = detected_at or now
    check_detected_at(detected_at, declared_at=now)

    incident = Incident.objects.create(
        number=numbering.next_number(),
        title=title[:200],
        summary=summary,
        severity=severity,
        detection_source=detection_source,
        impact=impact,
        users_affected_percent=users_affected_percent,
        is_restricted=is_restricted,
        created_by=by,
        detected_at=detected_at,
        declared_at=now,
        response_due_at=severity.response_due_at(now),
        next_update_due_at=severity.next_update_due_at(now),
    )
    incident.services.set(list(services))
    ChecklistItem.objects.bulk_create(
        ChecklistItem(incident=incident, phase=item.phase, position=item.position, text=item.text)
        for item in ChecklistTemplateItem.objects.filter(is_active=True).order_by("phase", "position")
    )
    timeline.record(timeline.declared(incident, by=by))
    ensure_responder(incident, by, by=by)
    commander = incident_commander or by
    if commander is not None:
        assign_holder(incident, role=Role.INCIDENT_COMMANDER, holder=commander, by=by)
    if runbook is not None:
        link_runbook(incident, runbook=runbook, by=by)
    # Paging pages the owning team per the severity and its escalation policy; outbox rows commit with the incident.
    lifecycle.publish(lifecycle.IncidentDeclared(incident_id=incident.pk, by=by))
    return incident


def check_status_change(incident: Incident, *, to: str, by, override_reason: str = "") -> tuple[Status, bool]:
    """The status change_status would set, and whether it closes over an incomplete closure checklist (a
    manager's override); raises DomainError, writes nothing."""
    require_responder(by)
    try:
        new = Status(to)
    except ValueError:
        raise DomainError(f"Unknown status {to!r}.", field="status")
    old = Status(incident.status)
    if new == old:
        raise InvalidTransition(f"{incident.reference} is already {old.label}.", field="status")
    if new not in ALLOWED_TRANSITIONS[old]:
        allowed = ", ".join(s.label for s in incident.allowed_transitions()) or "nothing (it is final)"
        raise InvalidTransition(
            f"{incident.reference} is {old.label}; it cannot become {new.label}. It can become: {allowed}.",
            field="status",
        )
    if new != Status.CLOSED:
        return new, False
    open_items = incident.checklist_items.filter(phase=ChecklistPhase.CLOSURE, checked_at__isnull=True)
    if not open_items.exists():
        return new, False
    if not override_reason.strip():
        names = "; ".join(open_items.values_list("text", flat=True))
        raise InvalidTransition(
            f"Complete the closure checklist before closing (open: {names}), or have a manager close it with a reason.",
            field="status",
        )
    if by is not None and not access.is_manager(by):
        raise PermissionDenied("Only an incident manager can close with the closure checklist incomplete.")
    return new, True


@transaction.atomic
def change_status(*, incident: Incident, to: str, by, note: str = "", override_reason: str = "") -> Incident:
    """Move along Investigating -> Identified -> Monitoring -> Resolved -> Closed (re-open from Monitoring or
    Resolved). Closing needs the closure checklist complete, or a manager's override with a reason.
    Publishes StatusChanged, then IncidentResolved, IncidentClosed or (Resolved -> Investigating) IncidentReopened:
    resolving and closing stop paging and resolving drafts the post-mortem; re-opening from Resolved starts a new
    page (stopped pages never reopen)."""
    incident = lock_incident(incident)
    new, overridden = check_status_change(incident, to=to, by=by, override_reason=override_reason)
    old = Status(incident.status)
    now = timezone.now()
    if new == Status.CLOSED:
        if overridden:
            timeline.record(timeline.closure_overridden(incident, reason=override_reason.strip(), by=by))
        incident.closed_at = now
    elif new == Status.IDENTIFIED:
        incident.identified_at = incident.identified_at or now
    elif new == Status.MONITORING:
        incident.mitigated_at = incident.mitigated_at or now
    elif new == Status.RESOLVED:
        incident.resolved_at = now
        incident.mitigated_at = incident.mitigated_at or now
        incident.next_update_due_at = None
    elif new == Status.INVESTIGATING:  # re-opened
        incident.resolved_at = None
        incident.next_update_due_at = incident.severity.next_update_due_at(now)
    incident.status = new
    incident.save()
    timeline.record(timeline.status_changed(incident, old=old, new=new, by=by, note=note))
    if new == Status.RESOLVED:
        tick_facts(incident, "resolved")
    lifecycle.publish(lifecycle.StatusChanged(incident_id=incident.pk, by=by, old_status=old, new_status=new))
    if new == Status.RESOLVED:
        lifecycle.publish(lifecycle.IncidentResolved(incident_id=incident.pk, by=by))
    elif new == Status.CLOSED:
        lifecycle.publish(lifecycle.IncidentClosed(incident_id=incident.pk, by=by))
    elif old == Status.RESOLVED and new == Status.INVESTIGATING:
        # Re-opened after resolution (every page was stopped). Moving back from Monitoring or Identified is only a
        # status change: the incident's page (open or acknowledged) still stands.
        lifecycle.publish(lifecycle.IncidentReopened(incident_id=incident.pk, by=by))
    return incident


def check_severity_change(incident: Incident, *, severity: SeverityPolicy, by, reason: str) -> None:
    """Raises DomainError when change_severity would refuse; writes nothing."""
    require_responder(by)
    if not (reason or "").strip():
        raise DomainError("Say why the severity changes.", field="reason")
    if incident.status == Status.CLOSED:
        raise InvalidTransition(f"{incident.reference} is closed; its severity cannot change.", field="severity")
    if incident.severity_id == severity.pk:
        raise DomainError(f"{incident.reference} is already {severity.level}.", field="severity")


@transaction.atomic
def change_severity(*, incident: Incident, severity: SeverityPolicy, by, reason: str) -> Incident:
    incident = lock_incident(incident)
    check_severity_change(incident, severity=severity, by=by, reason=reason)
    old = incident.severity
    incident.severity = severity
    incident.response_due_at = severity.response_due_at(incident.declared_at)
    if incident.is_active:
        incident.next_update_due_at = severity.next_update_due_at(timezone.now())
    incident.save()
    timeline.record(timeline.severity_changed(incident, old=old, new=severity, by=by, reason=reason.strip()))
    # Raised (a lower rank) on an active incident: paging pages again at the new severity.
    lifecycle.publish(
        lifecycle.SeverityChanged(
            incident_id=incident.pk,
            by=by,
            old_level=old.level,
            new_level=severity.level,
            raised=severity.rank < old.rank,
        )
    )
    return incident


@transaction.atomic
def acknowledge_incident(*, incident: Incident, by) -> Incident:
    """Someone has seen the incident and is on it. The first acknowledgement is recorded and time-stamped;
    later ones write nothing here, so a double click or a race between two responders never writes twice.
    Every acknowledgement publishes IncidentAcknowledged (paging stops escalating every open page, also one
    started after an earlier acknowledgement because the severity was raised)."""
    require_responder(by)
    incident = lock_incident(incident)
    first = incident.acknowledged_at is None
    lifecycle.publish(lifecycle.IncidentAcknowledged(incident_id=incident.pk, by=by, first=first))
    if not first:
        return incident
    if incident.status == Status.CLOSED:
        raise InvalidTransition(f"{incident.reference} is closed.", field="incident")
    incident.acknowledged_at = timezone.now()
    incident.acknowledged_by = by
    incident.save(update_fields=["acknowledged_at", "acknowledged_by", "updated_at"])
    ensure_responder(incident, by, by=by)
    timeline.record(timeline.acknowledged(incident, by=by))
    tick_facts(incident, "acknowledged")
    return incident

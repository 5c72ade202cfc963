"""Every state change of an incident. Each function takes the acting user (None for the portal itself),
runs in one transaction, locks the incident row, validates, changes, writes the timeline entry in the same
transaction and enqueues side effects with transaction.on_commit. Views, API, admin and tasks all call these.

What other apps do about it (paging starts and stops, the post-mortem is drafted, chat is told) they do by
subscribing to the typed events these functions publish (incidents/lifecycle.py); this module imports neither
`oncall` nor `postmortems`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from . import access, lifecycle, numbering, timeline
from .errors import DomainError, InvalidTransition, PermissionDenied
from .models import (
    ALLOWED_TRANSITIONS,
    UPDATE_STATUSES_BY_KIND,
    ChecklistItem,
    ChecklistPhase,
    ChecklistTemplateItem,
    DetectionSource,
    EntryKind,
    FiveWhys,
    Incident,
    IncidentResponder,
    IncidentRunbook,
    Role,
    RoleAssignment,
    Runbook,
    Service,
    SeverityPolicy,
    Status,
    StatusUpdate,
    UpdateKind,
    UpdateStatus,
)
from .profiles.zones import format_moment
from .statuspage import services as statuspage

BACKDATE_TOLERANCE = timedelta(minutes=1)
# Bounds on the times people type (QA: detected in 1900 or 9999 was accepted). Declaring retroactively something
# detected months ago is legitimate; more than a year before the declaration is a typo. The form, the admin and
# the API all reach these through the services below.
MAX_DETECTION_AGE = timedelta(days=366)
# Timeline entries may precede detection (the change that caused it), by as much as detection may precede
# the declaration.
MAX_ENTRY_BEFORE_DETECTION = MAX_DETECTION_AGE
# The slowest update cadence is hours; a next update more than a week ahead is a typo, not a plan.
MAX_NEXT_UPDATE_AHEAD = timedelta(days=7)
MAX_TIMELINE_ENTRY_LENGTH = 20_000
TITLE_MAX_LENGTH = Incident._meta.get_field("title").max_length


def _require_responder(user) -> None:
    # user=None is the portal itself (alert rules, timers); people need the responder permission.
    if user is not None and not access.can_respond(user):
        raise PermissionDenied("You need the responder role to change incidents.")


def _lock(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().select_related("severity").get(pk=incident.pk)


def _utc(moment: datetime) -> str:
    # In the reader's zone (the request's), like every time the portal shows.
    return format_moment(moment)


def check_detected_at(detected_at: datetime, *, declared_at: datetime) -> None:
    """Detected at most a year before the incident was declared, and not after it (a minute of clock skew)."""
    if detected_at > declared_at + BACKDATE_TOLERANCE:
        raise DomainError("Detection time cannot be in the future.", field="detected_at")
    earliest = declared_at - MAX_DETECTION_AGE
    if detected_at < earliest:
        raise DomainError(
            f"Choose a detection time at most a year before the declaration (from {_utc(earliest)}).",
            field="detected_at",
        )


def check_entry_time(incident: Incident, occurred_at: datetime, *, now: datetime) -> None:
    """A timeline entry happened by now (a minute of clock skew), at most a year before detection."""
    if occurred_at > now + BACKDATE_TOLERANCE:
        raise DomainError("A timeline entry cannot be in the future.", field="occurred_at")
    earliest = incident.detected_at - MAX_ENTRY_BEFORE_DETECTION
    if occurred_at < earliest:
        raise DomainError(
            f"Choose a time at most a year before the incident was detected (from {_utc(earliest)}).",
            field="occurred_at",
        )


def check_next_update_at(next_update_at: datetime, *, now: datetime) -> None:
    if next_update_at <= now:
        raise DomainError("The next update time must be in the future.", field="next_update_at")
    latest = now + MAX_NEXT_UPDATE_AHEAD
    if next_update_at > latest:
        raise DomainError(f"Choose a next update within a week (by {_utc(latest)}).", field="next_update_at")


def _current_holder_ids(incident: Incident, roles, current_roles=None) -> set[int]:
    """Holders of these roles now; from prefetched assignments (the incident page's current_roles) when given."""
    if current_roles is None:
        current_roles = incident.role_assignments.filter(relieved_at__isnull=True, role__in=list(roles))
    return {assignment.holder_id for assignment in current_roles if assignment.role in roles}


def may_backdate(user, incident: Incident, *, current_roles=None) -> bool:
    """Back-dating timeline entries is for the Scribe, the Incident Commander and managers."""
    if user is None:
        return True
    if not access.can_respond(user):
        return False
    if access.is_manager(user):
        return True
    return user.pk in _current_holder_ids(incident, (Role.SCRIBE, Role.INCIDENT_COMMANDER), current_roles)


def may_edit_details(user, incident: Incident, *, current_roles=None) -> bool:
    """An incident's details (title, summary, impact, services, detection) are edited by its Incident
    Commander and by managers."""
    if user is None:
        return True
    if not access.can_respond(user):
        return False
    if access.is_manager(user):
        return True
    return user.pk in _current_holder_ids(incident, (Role.INCIDENT_COMMANDER,), current_roles)


def may_lift_restriction(user) -> bool:
    """Making a restricted incident visible to everyone is for the security team and admins: they own what
    restricted incidents hold. Restricting (narrowing who sees it) needs only the right to edit details."""
    return user is None or access.is_security(user) or access.is_admin(user)


class _Unchanged:
    def __repr__(self):
        return "UNCHANGED"

    def __bool__(self):
        return False


# Default of update_incident_details' fields: "leave as it is" (None and "" are real values).
UNCHANGED = _Unchanged()
DETAIL_FIELDS = (
    "title",
    "summary",
    "impact",
    "services",
    "is_restricted",
    "detected_at",
    "detection_source",
    "users_affected_percent",
)


@dataclass(frozen=True)
class DetailChange:
    """One field of update_incident_details that really changes: its name and the values before and after
    (for services, lists of Service)."""

    field: str
    old: object
    new: object


def _percent(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        percent = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise DomainError("Give the share of users affected as a number from 0 to 100.", field="users_affected_percent")
    if not percent.is_finite() or not 0 <= percent <= 100:
        raise DomainError("Give the share of users affected as a number from 0 to 100.", field="users_affected_percent")
    return percent.quantize(Decimal("0.01"))


def check_details_change(
    incident: Incident,
    *,
    by,
    title=UNCHANGED,
    summary=UNCHANGED,
    impact=UNCHANGED,
    services=UNCHANGED,
    restricted=UNCHANGED,
    detected_at=UNCHANGED,
    detection_source=UNCHANGED,
    users_affected_percent=UNCHANGED,
) -> list[DetailChange]:
    """What update_incident_details would change, validated; raises DomainError, writes nothing. The admin form
    asks this while validating; the service asks it again under the row lock."""
    _require_responder(by)
    if not may_edit_details(by, incident):
        raise PermissionDenied("Only the Incident Commander or a manager can edit the incident's details.")
    changes: list[DetailChange] = []

    def compare(field, old, new):
        if old != new:
            changes.append(DetailChange(field, old, new))

    if title is not UNCHANGED:
        title = (title or "").strip()
        if not title:
            raise DomainError("Give the incident a short title.", field="title")
        if len(title) > TITLE_MAX_LENGTH:
            raise DomainError(f"Keep the title under {TITLE_MAX_LENGTH} characters.", field="title")
        compare("title", incident.title, title)
    if summary is not UNCHANGED:
        compare("summary", incident.summary, (summary or "").strip())
    if impact is not UNCHANGED:
        compare("impact", incident.impact, (impact or "").strip())
    if services is not UNCHANGED:
        current = list(incident.services.order_by("name"))
        wanted = sorted({service.pk: service for service in services}.values(), key=lambda s: s.name)
        if {s.pk for s in current} != {s.pk for s in wanted}:
            changes.append(DetailChange("services", current, wanted))
    if restricted is not UNCHANGED:
        restricted = bool(restricted)
        if incident.is_restricted and not restricted and not may_lift_restriction(by):
            raise PermissionDenied(
                "Only the security team or an admin can lift the restriction of an incident.", field="is_restricted"
            )
        compare("is_restricted", incident.is_restricted, restricted)
    if detected_at is not UNCHANGED:
        if detected_at is None:
            raise DomainError("Give the detection time.", field="detected_at")
        if detected_at != incident.detected_at:
            if detected_at > incident.declared_at:
                raise DomainError("Detection cannot be after the incident was declared.", field="detected_at")
            check_detected_at(detected_at, declared_at=incident.declared_at)
            changes.append(DetailChange("detected_at", incident.detected_at, detected_at))
    if detection_source is not UNCHANGED:
        if detection_source not in DetectionSource.values:
            raise DomainError(f"Unknown detection source {detection_source!r}.", field="detection_source")
        compare("detection_source", incident.detection_source, detection_source)
    if users_affected_percent is not UNCHANGED:
        old = incident.users_affected_percent
        new = _percent(users_affected_percent)
        if (old is None) != (new is None) or (old is not None and Decimal(old) != new):
            changes.append(DetailChange("users_affected_percent", old, new))
    return changes


@transaction.atomic
def update_incident_details(
    *,
    incident: Incident,
    by,
    title=UNCHANGED,
    summary=UNCHANGED,
    impact=UNCHANGED,
    services=UNCHANGED,
    restricted=UNCHANGED,
    detected_at=UNCHANGED,
    detection_source=UNCHANGED,
    users_affected_percent=UNCHANGED,
) -> Incident:
    """Edit the incident's descriptive details. Fields left UNCHANGED are not touched; the others are validated
    (the detection-time rules of declare_incident, the title's length, the restriction rule) under the incident's
    row lock, and one timeline entry names exactly what changed. Nothing changed: nothing is written. The Incident
    Commander and managers may edit; lifting a restriction needs the security team or an admin."""
    incident = _lock(incident)
    changes = check_details_change(
        incident,
        by=by,
        title=title,
        summary=summary,
        impact=impact,
        services=services,
        restricted=restricted,
        detected_at=detected_at,
        detection_source=detection_source,
        users_affected_percent=users_affected_percent,
    )
    if not changes:
        return incident
    columns = []
    for change in changes:
        if change.field == "services":
            incident.services.set(change.new)
        else:
            setattr(incident, change.field, change.new)
            columns.append(change.field)
    if columns:
        incident.save(update_fields=[*columns, "updated_at"])
    timeline.record(timeline.details_changed(incident, changes=changes, by=by))
    return incident


def _add_responder(incident: Incident, user, *, by) -> bool:
    if user is None:
        return False
    _, created = IncidentResponder.objects.get_or_create(incident=incident, user=user, defaults={"added_by": by})
    return created


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
    _require_responder(by)
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
    _add_responder(incident, by, by=by)
    commander = incident_commander or by
    if commander is not None:
        _assign(incident, role=Role.INCIDENT_COMMANDER, holder=commander, by=by)
    if runbook is not None:
        _attach_runbook(incident, runbook=runbook, by=by)
    # Paging pages the owning team per the severity and its escalation policy; outbox rows commit with the incident.
    lifecycle.publish(lifecycle.IncidentDeclared(incident_id=incident.pk, by=by))
    return incident


def check_status_change(incident: Incident, *, to: str, by, override_reason: str = "") -> tuple[Status, bool]:
    """The status change_status would set, and whether it closes over an incomplete closure checklist (a
    manager's override); raises DomainError, writes nothing."""
    _require_responder(by)
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
    incident = _lock(incident)
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
        _tick_facts(incident, "resolved")
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
    _require_responder(by)
    if not (reason or "").strip():
        raise DomainError("Say why the severity changes.", field="reason")
    if incident.status == Status.CLOSED:
        raise InvalidTransition(f"{incident.reference} is closed; its severity cannot change.", field="severity")
    if incident.severity_id == severity.pk:
        raise DomainError(f"{incident.reference} is already {severity.level}.", field="severity")


@transaction.atomic
def change_severity(*, incident: Incident, severity: SeverityPolicy, by, reason: str) -> Incident:
    incident = _lock(incident)
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


def _assign(incident: Incident, *, role: str, holder, by) -> RoleAssignment:
    role = Role(role)
    current = (
        RoleAssignment.objects.select_for_update()
        .filter(incident=incident, role=role, relieved_at__isnull=True)
        .select_related("holder")
        .first()
    )
    if current and current.holder_id == holder.pk:
        raise DomainError(f"{holder} is already {role.label}.", field="holder")
    now = timezone.now()
    if current:
        current.relieved_at = now
        current.save(update_fields=["relieved_at"])
    assignment = RoleAssignment.objects.create(
        incident=incident, role=role, holder=holder, assigned_by=by, assigned_at=now
    )
    _add_responder(incident, holder, by=by)
    timeline.record(
        timeline.role_assigned(incident, role=role, holder=holder, previous=current.holder if current else None, by=by)
    )
    if role == Role.INCIDENT_COMMANDER:
        _tick_facts(incident, "ic_assigned")
    lifecycle.publish(lifecycle.RoleAssigned(incident_id=incident.pk, by=by, role=role, holder_id=holder.pk))
    return assignment


def check_role_assignment(incident: Incident, *, role: str, holder, by) -> None:
    """Raises DomainError when assign_role would refuse; writes nothing."""
    _require_responder(by)
    if role not in Role.values:
        raise DomainError(f"Unknown role {role!r}.", field="role")
    if holder is None or not holder.is_active:
        raise DomainError("Choose an active user for the role.", field="holder")
    if incident.status == Status.CLOSED:
        raise InvalidTransition(f"{incident.reference} is closed.", field="role")
    if incident.role_assignments.filter(role=role, relieved_at__isnull=True, holder=holder).exists():
        raise DomainError(f"{holder} is already {Role(role).label}.", field="holder")


@transaction.atomic
def assign_role(*, incident: Incident, role: str, holder, by) -> RoleAssignment:
    """Give a role to someone (claiming it when holder is the actor). One holder per role; history kept."""
    incident = _lock(incident)
    check_role_assignment(incident, role=role, holder=holder, by=by)
    return _assign(incident, role=role, holder=holder, by=by)


@transaction.atomic
def relieve_role(*, incident: Incident, role: str, by) -> None:
    _require_responder(by)
    incident = _lock(incident)
    current = (
        RoleAssignment.objects.select_for_update()
        .filter(incident=incident, role=role, relieved_at__isnull=True)
        .first()
    )
    if current is None:
        raise DomainError(f"Nobody holds {Role(role).label}.", field="role")
    current.relieved_at = timezone.now()
    current.save(update_fields=["relieved_at"])
    timeline.record(timeline.role_relieved(incident, role=Role(role), holder=current.holder, by=by))


@transaction.atomic
def add_timeline_entry(
    *, incident: Incident, by, body: str, occurred_at: datetime | None = None, kind: str = EntryKind.NOTE
):
    """A note (or action) on the timeline. Back-dating (occurred_at in the past) is for the Scribe,
    the Incident Commander and managers: the Scribe records what happened before they wrote it down."""
    _require_responder(by)
    body = (body or "").strip()
    if not body:
        raise DomainError("Write something for the timeline entry.", field="body")
    if len(body) > MAX_TIMELINE_ENTRY_LENGTH:
        raise DomainError(
            f"Keep a timeline entry under {MAX_TIMELINE_ENTRY_LENGTH:,} characters; link to longer material.",
            field="body",
        )
    if kind not in (EntryKind.NOTE, EntryKind.ACTION):
        raise DomainError("Only notes and actions can be added by hand.", field="kind")
    incident = _lock(incident)
    now = timezone.now()
    if occurred_at is not None:
        check_entry_time(incident, occurred_at, now=now)
        if now - occurred_at > BACKDATE_TOLERANCE and not may_backdate(by, incident):
            raise PermissionDenied(
                "Only the Scribe, the Incident Commander or a manager can back-date timeline entries."
            )
    _add_responder(incident, by, by=by)
    builder = timeline.note if kind == EntryKind.NOTE else timeline.action_taken
    return timeline.record(builder(incident, body=body, by=by, occurred_at=occurred_at or now))


@transaction.atomic
def tick_checklist_item(*, item: ChecklistItem, by, checked: bool = True) -> ChecklistItem:
    _require_responder(by)
    incident = _lock(item.incident)
    item = ChecklistItem.objects.select_for_update().get(pk=item.pk, incident=incident)
    if incident.status == Status.CLOSED:
        raise InvalidTransition(f"{incident.reference} is closed; its checklists are final.", field="item")
    if item.is_checked == checked:
        return item  # a double click or a stale form: already in the state asked for
    item.checked_at = timezone.now() if checked else None
    item.checked_by = by if checked else None
    item.save(update_fields=["checked_at", "checked_by"])
    timeline.record(timeline.checklist_ticked(incident, item=item, checked=checked, by=by))
    return item


# Checklist items that are facts the portal records itself: ticked when the fact happens (by whoever made it
# happen), each with its timeline entry. People still tick the rest. Matched by phase and the guide's wording.
CHECKLIST_FACTS = {
    "ic_assigned": [(ChecklistPhase.DETECTION, "IC assigned")],
    "acknowledged": [(ChecklistPhase.DETECTION, "Alert acknowledged")],
    "status_page_updated": [(ChecklistPhase.RESPONSE, "Status page updated")],
    "status_page_resolved": [
        (ChecklistPhase.RESOLUTION, "Status page updated"),
        (ChecklistPhase.CLOSURE, 'Status page updated to "Resolved"'),
    ],
    "internal_update_sent": [(ChecklistPhase.RESPONSE, "Internal communication sent")],
    "internal_resolution_sent": [(ChecklistPhase.CLOSURE, "Internal communication sent")],
    "resolved": [(ChecklistPhase.CLOSURE, "Incident resolved")],
    "postmortem_scheduled": [
        (ChecklistPhase.RECOVERY, "Schedule post-mortem"),
        (ChecklistPhase.CLOSURE, "Post-mortem scheduled"),
    ],
}


def _tick_facts(incident: Incident, *facts: str) -> list[ChecklistItem]:
    """Inside the caller's transaction, with the incident locked: tick the still-open items these facts answer.
    The portal ticks them (checked_by and the entry's author are empty: "the portal"), as a consequence of the
    change its caller recorded."""
    wanted = [pair for fact in facts for pair in CHECKLIST_FACTS[fact]]
    if not wanted or incident.status == Status.CLOSED:
        return []
    candidates = (
        ChecklistItem.objects.select_for_update()
        .filter(incident=incident, checked_at__isnull=True, phase__in={phase for phase, _ in wanted})
        .order_by("phase", "position")  # not the default ordering: its runbook join cannot be locked
    )
    items = [item for item in candidates if (item.phase, item.text) in wanted]
    now = timezone.now()
    for item in items:
        item.checked_at, item.checked_by = now, None
    if items:
        ChecklistItem.objects.bulk_update(items, ["checked_at", "checked_by"])
        timeline.record_all([timeline.checklist_ticked(incident, item=item, checked=True, by=None) for item in items])
    return items


@transaction.atomic
def record_checklist_fact(*, incident: Incident, fact: str) -> list[ChecklistItem]:
    """For other apps (post-mortems: a meeting scheduled): tick the checklist items `fact` answers."""
    if fact not in CHECKLIST_FACTS:
        raise DomainError(f"Unknown checklist fact {fact!r}.", field="fact")
    return _tick_facts(_lock(incident), fact)


def check_runbook_attachment(incident: Incident, *, runbook: Runbook) -> None:
    """Raises DomainError when attach_runbook would refuse; writes nothing."""
    if IncidentRunbook.objects.filter(incident=incident, runbook=runbook).exists():
        raise DomainError(f"{runbook.title} is already attached.", field="runbook")


def _attach_runbook(incident: Incident, *, runbook: Runbook, by) -> IncidentRunbook:
    check_runbook_attachment(incident, runbook=runbook)
    link = IncidentRunbook.objects.create(incident=incident, runbook=runbook, attached_by=by)
    ChecklistItem.objects.bulk_create(
        ChecklistItem(
            incident=incident,
            phase=ChecklistPhase.RUNBOOK,
            position=step.position,
            text=step.text,
            command=step.command,
            runbook=runbook,
        )
        for step in runbook.steps.all()
    )
    timeline.record(timeline.runbook_attached(incident, runbook=runbook, by=by))
    return link


@transaction.atomic
def attach_runbook(*, incident: Incident, runbook: Runbook, by) -> IncidentRunbook:
    """Attach a runbook; its immediate actions become a checklist on the incident."""
    _require_responder(by)
    incident = _lock(incident)
    return _attach_runbook(incident, runbook=runbook, by=by)


@transaction.atomic
def record_five_whys(*, incident: Incident, problem: str, whys: Sequence[str], root_cause: str, by) -> FiveWhys:
    _require_responder(by)
    problem = (problem or "").strip()
    if not problem:
        raise DomainError("State the problem the five whys start from.", field="problem")
    whys = [why.strip() for why in whys if why and why.strip()]
    if len(whys) > 10:
        raise DomainError("Keep it to at most ten whys.", field="whys")
    incident = _lock(incident)
    five_whys, _ = FiveWhys.objects.select_for_update().get_or_create(incident=incident, defaults={"problem": problem})
    five_whys.problem = problem
    five_whys.whys = whys
    five_whys.root_cause = (root_cause or "").strip()
    five_whys.updated_by = by
    five_whys.save()
    timeline.record(timeline.five_whys_recorded(incident, five_whys=five_whys, by=by))
    return five_whys


@transaction.atomic
def post_status_update(
    *,
    incident: Incident,
    kind: str,
    status: str,
    by,
    title: str = "",
    what_we_know: str = "",
    what_we_are_doing: str = "",
    impact: str = "",
    eta: str = "",
    description: str = "",
    workaround: str = "",
    affected_services: Iterable[Service] = (),
    component_states: dict | None = None,
    next_update_at: datetime | None = None,
    publish: bool = False,
) -> StatusUpdate:
    """Post an update in the guide's internal or status-page template. An internal update resets the
    update-cadence clock: the next one is due at next_update_at, or one cadence from now. A status-page update
    sets the public state of each service it names (`component_states`, {service or pk: state}; affected
    services without one get the severity's state, operational when resolving). A closed incident takes only a
    status-page "Resolved" update (the status page may still show it as ongoing)."""
    _require_responder(by)
    if kind not in UpdateKind.values:
        raise DomainError(f"Unknown update kind {kind!r}.", field="kind")
    kind = UpdateKind(kind)
    if status not in UpdateStatus.values or UpdateStatus(status) not in UPDATE_STATUSES_BY_KIND[kind]:
        allowed = ", ".join(s.label for s in UPDATE_STATUSES_BY_KIND[kind])
        raise DomainError(f"A {kind.label.lower()} status must be one of: {allowed}.", field="status")
    now = timezone.now()
    if next_update_at is not None:
        check_next_update_at(next_update_at, now=now)
    if kind == UpdateKind.INTERNAL and not (what_we_know.strip() or what_we_are_doing.strip()):
        raise DomainError("Say what we know or what we're doing.", field="what_we_know")
    if kind == UpdateKind.EXTERNAL:
        if not title.strip():
            raise DomainError("Give the status page update a brief description of the issue.", field="title")
        if not description.strip():
            raise DomainError("Describe the issue and its impact for users.", field="description")
    incident = _lock(incident)
    if incident.status == Status.CLOSED and not (kind == UpdateKind.EXTERNAL and status == UpdateStatus.RESOLVED):
        raise InvalidTransition(f"{incident.reference} is closed.", field="kind")
    affected_services, states = list(affected_services), {}
    if kind == UpdateKind.EXTERNAL:
        states = statuspage.choose_component_states(
            incident=incident, status=status, affected_services=affected_services, component_states=component_states
        )
        affected_services += [service for service in states if service not in affected_services]
    if status == UpdateStatus.RESOLVED:
        next_update_at = None  # nothing more will come: a "next update" would only go stale
    elif next_update_at is None:
        next_update_at = incident.severity.next_update_due_at(now)
    update = StatusUpdate.objects.create(
        incident=incident,
        kind=kind,
        status=status,
        title=title.strip(),
        what_we_know=what_we_know,
        what_we_are_doing=what_we_are_doing,
        impact=impact,
        eta=eta,
        description=description,
        workaround=workaround,
        next_update_at=next_update_at,
        posted_at=now,
        posted_by=by,
        is_published=bool(publish and kind == UpdateKind.EXTERNAL),
    )
    update.affected_services.set(list(affected_services))
    statuspage.record_component_states(update=update, states=states)
    if update.is_published:
        # Subscribers' outbox rows commit with the update; the emails go out after commit.
        statuspage.notify_subscribers(update)
    if kind == UpdateKind.INTERNAL and incident.is_active:
        incident.next_update_due_at = next_update_at
        incident.save(update_fields=["next_update_due_at", "updated_at"])
    timeline.record(timeline.update_posted(incident, update=update, by=by))
    resolved = status == UpdateStatus.RESOLVED
    if update.is_published:
        _tick_facts(incident, "status_page_updated", *(["status_page_resolved"] if resolved else []))
    elif kind == UpdateKind.INTERNAL:
        _tick_facts(incident, "internal_update_sent", *(["internal_resolution_sent"] if resolved else []))
    return update


@transaction.atomic
def acknowledge_incident(*, incident: Incident, by) -> Incident:
    """Someone has seen the incident and is on it. The first acknowledgement is recorded and time-stamped;
    later ones write nothing here, so a double click or a race between two responders never writes twice.
    Every acknowledgement publishes IncidentAcknowledged (paging stops escalating every open page, also one
    started after an earlier acknowledgement because the severity was raised)."""
    _require_responder(by)
    incident = _lock(incident)
    first = incident.acknowledged_at is None
    lifecycle.publish(lifecycle.IncidentAcknowledged(incident_id=incident.pk, by=by, first=first))
    if not first:
        return incident
    if incident.status == Status.CLOSED:
        raise InvalidTransition(f"{incident.reference} is closed.", field="incident")
    incident.acknowledged_at = timezone.now()
    incident.acknowledged_by = by
    incident.save(update_fields=["acknowledged_at", "acknowledged_by", "updated_at"])
    _add_responder(incident, by, by=by)
    timeline.record(timeline.acknowledged(incident, by=by))
    _tick_facts(incident, "acknowledged")
    return incident


@transaction.atomic
def add_responder(*, incident: Incident, user, by) -> bool:
    _require_responder(by)
    incident = _lock(incident)
    created = _add_responder(incident, user, by=by)
    if created:
        timeline.record(timeline.responder_added(incident, user=user, by=by))
    return created


@transaction.atomic
def add_chat_message(*, incident: Incident, by, author, body: str, said_at: datetime):
    """A message from the incident's chat channel put on the timeline by a responder (📌 or "Add to timeline"),
    as said: by its author (None when the chat user is not a portal user; the body names them) at the time the chat
    server stamped it. That time is the chat's, not a claim by `by`, so any responder may add an older message."""
    _require_responder(by)
    body = (body or "").strip()
    if not body:
        raise DomainError("That message has no text to put on the timeline.", field="body")
    if len(body) > MAX_TIMELINE_ENTRY_LENGTH:
        raise DomainError(
            f"Keep a timeline entry under {MAX_TIMELINE_ENTRY_LENGTH:,} characters; link to longer material.",
            field="body",
        )
    incident = _lock(incident)
    check_entry_time(incident, said_at, now=timezone.now())
    _add_responder(incident, by, by=by)
    return timeline.record(timeline.note(incident, body=body, by=author, occurred_at=said_at))

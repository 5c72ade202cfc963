"""Merging a duplicate incident into another, and linking related incidents.

Merge B into A (the Incident Commander of either, or a manager): B's alert groups, timeline entries (marked "from
INC-B"), role holders, responders, services (so status-page subscribers of B's services follow A) and pages move to
A; B's pages stop (paging subscribes to `IncidentMerged`); B is closed as a duplicate of A and its page redirects
there. One transaction, both incidents locked in id order. A restricted incident never merges into an unrestricted
one: its evidence would become visible to everyone who can see A.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from . import access, lifecycle, timeline
from .alerting.models import AlertGroup
from .errors import DomainError, PermissionDenied
from .models import Incident, IncidentResponder, Role, RoleAssignment, Status, TimelineEntry
from .services.roles import assign_holder
from .services.rules import ensure_responder


def _lock_both(first: Incident, second: Incident) -> tuple[Incident, Incident]:
    rows = {
        row.pk: row
        for row in Incident.objects.select_for_update().select_related("severity").filter(pk__in=[first.pk, second.pk])
    }
    return rows[first.pk], rows[second.pk]


def _is_commander(incident: Incident, user) -> bool:
    return RoleAssignment.objects.filter(
        incident=incident, role=Role.INCIDENT_COMMANDER, holder=user, relieved_at__isnull=True
    ).exists()


def check_merge(*, source: Incident, into: Incident, by) -> None:
    if source.pk == into.pk:
        raise DomainError("An incident cannot be merged into itself.", field="into")
    if not (access.is_manager(by) or _is_commander(source, by) or _is_commander(into, by)):
        raise PermissionDenied("Only the Incident Commander of either incident, or a manager, can merge incidents.")
    if source.duplicate_of_id:
        raise DomainError(f"{source.reference} was already merged into another incident.", field="incident")
    if into.duplicate_of_id:
        raise DomainError(
            f"{into.reference} is itself a duplicate; merge into the incident it points to.", field="into"
        )
    if source.status == Status.CLOSED:
        raise DomainError(
            f"{source.reference} is closed; only open or resolved incidents can be merged.", field="incident"
        )
    if into.status == Status.CLOSED:
        raise DomainError(f"{into.reference} is closed; re-open it before merging into it.", field="into")
    if source.is_restricted and not into.is_restricted:
        raise DomainError(
            f"{source.reference} is restricted and {into.reference} is not: merging would show its evidence to "
            f"everyone who can see {into.reference}.",
            field="into",
        )


@transaction.atomic
def merge_incident(*, source: Incident, into: Incident, by, reason: str = "") -> Incident:
    """Merge `source` (the duplicate) into `into`. Returns `into`."""
    source, into = _lock_both(source, into)
    check_merge(source=source, into=into, by=by)
    reason = (reason or "").strip()
    now = timezone.now()

    # Pages first: paging stops the duplicate's pages (on its own timeline) and moves them, inside this transaction.
    # (Counted through the reverse relation the paging app adds; incidents never imports it.)
    moved_pages = source.pages.count() if hasattr(source, "pages") else 0
    lifecycle.publish(
        lifecycle.IncidentMerged(incident_id=source.pk, by=by, into_id=into.pk, into_reference=into.reference)
    )

    alerts = AlertGroup.objects.filter(incident=source).update(incident=into)

    roles = 0
    for assignment in RoleAssignment.objects.filter(incident=source, relieved_at__isnull=True).select_related("holder"):
        holder_now = RoleAssignment.objects.filter(
            incident=into, role=assignment.role, relieved_at__isnull=True
        ).first()
        if holder_now is None:
            assign_holder(into, role=assignment.role, holder=assignment.holder, by=by)
            roles += 1
        elif holder_now.holder_id != assignment.holder_id:
            ensure_responder(into, assignment.holder, by=by)
        assignment.relieved_at = now
        assignment.save(update_fields=["relieved_at"])
    for responder in IncidentResponder.objects.filter(incident=source).select_related("user"):
        ensure_responder(into, responder.user, by=by)
    into.services.add(*source.services.all())

    entries = list(TimelineEntry.objects.filter(incident=source))
    for entry in entries:
        entry.incident = into
        entry.data = {**(entry.data or {}), "merged_from": source.reference}
    TimelineEntry.objects.bulk_update(entries, ["incident", "data"], batch_size=500)

    source.status = Status.CLOSED
    source.resolved_at = source.resolved_at or now
    source.closed_at = now
    source.duplicate_of = into
    source.next_update_due_at = None
    source.response_due_at = None
    source.save(
        update_fields=[
            "status", "resolved_at", "closed_at", "duplicate_of", "next_update_due_at", "response_due_at", "updated_at",
        ]
    )  # fmt: skip
    moved = {"alert groups": alerts, "timeline entries": len(entries), "roles": roles}
    if moved_pages:
        moved["pages"] = moved_pages
    timeline.record(timeline.merged_into(source, into=into, by=by, reason=reason))
    timeline.record(timeline.merged_from(into, duplicate=source, by=by, moved=moved))
    lifecycle.publish(lifecycle.IncidentClosed(incident_id=source.pk, by=by))
    return into


@transaction.atomic
def link_related(*, incident: Incident, other: Incident, by) -> None:
    if not access.can_respond(by):
        raise PermissionDenied("You need the responder role to link incidents.")
    if incident.pk == other.pk:
        raise DomainError("An incident cannot be related to itself.", field="incident")
    incident, other = _lock_both(incident, other)
    if incident.related_incidents.filter(pk=other.pk).exists():
        raise DomainError(f"{incident.reference} and {other.reference} are already linked.", field="incident")
    incident.related_incidents.add(other)
    timeline.record(timeline.related_linked(incident, other=other, by=by))
    timeline.record(timeline.related_linked(other, other=incident, by=by))


@transaction.atomic
def unlink_related(*, incident: Incident, other: Incident, by) -> None:
    if not access.can_respond(by):
        raise PermissionDenied("You need the responder role to unlink incidents.")
    incident, other = _lock_both(incident, other)
    if not incident.related_incidents.filter(pk=other.pk).exists():
        raise DomainError(f"{incident.reference} and {other.reference} are not linked.", field="incident")
    incident.related_incidents.remove(other)
    timeline.record(timeline.related_unlinked(incident, other=other, by=by))
    timeline.record(timeline.related_unlinked(other, other=incident, by=by))

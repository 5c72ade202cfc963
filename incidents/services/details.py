"""Editing an incident's descriptive details (title, summary, impact, services, restriction, detection), with one
timeline entry naming what changed."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import transaction

from .. import timeline
from ..errors import DomainError, PermissionDenied
from ..models import DetectionSource, Incident
from ..selectors import may_edit_details, may_lift_restriction
from .rules import (
    TITLE_MAX_LENGTH,
    check_detected_at,
    lock_incident,
    require_responder,
)


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
    require_responder(by)
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
    incident = lock_incident(incident)
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

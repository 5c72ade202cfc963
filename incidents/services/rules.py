"""The rules every incident change shares: who may change incidents, the row lock, bounds on the times people
type, who may back-date entries or edit details, and adding someone to the incident's responders."""

from __future__ import annotations

from datetime import datetime, timedelta

from .. import access
from ..errors import DomainError, PermissionDenied
from ..models import Incident, IncidentResponder
from ..profiles.zones import format_moment

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


def require_responder(user) -> None:
    # user=None is the portal itself (alert rules, timers); people need the responder permission.
    if user is not None and not access.can_respond(user):
        raise PermissionDenied("You need the responder role to change incidents.")


def lock_incident(incident: Incident) -> Incident:
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


def ensure_responder(incident: Incident, user, *, by) -> bool:
    if user is None:
        return False
    _, created = IncidentResponder.objects.get_or_create(incident=incident, user=user, defaults={"added_by": by})
    return created

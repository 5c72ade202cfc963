"""The rules post-mortem changes share: who may edit and publish, the row lock, and bounds on the dates people
type (meetings, due dates, timeline times)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.utils import timezone

from incidents import access
from incidents.errors import DomainError, InvalidTransition, PermissionDenied
from incidents.models import Incident, Role
from incidents.profiles.zones import format_moment
from incidents.selectors import current_holder

from ..models import PostMortem

# Bounds on the dates people type (QA: a meeting in year 9999 was accepted). The browser forms, the admin and the
# API all reach these through the services below.
MEETING_MAX_AHEAD = timedelta(days=366)
ACTION_ITEM_MAX_AHEAD = timedelta(days=2 * 366)
TIMELINE_MAX_BEFORE_INCIDENT = timedelta(days=2 * 366)
FUTURE_TOLERANCE = timedelta(minutes=1)


def person_name(user) -> str:
    if user is None:
        return "nobody assigned"
    return user.get_full_name() or user.get_username()


def local_time(moment: datetime) -> datetime:
    return timezone.localtime(moment)


def check_owner_sees_incident(owner, incident: Incident) -> None:
    """An owner gets emails naming the incident and links to it: they must be able to see it (a restricted
    incident: its responders, the security team, admins)."""
    if not incident.is_visible_to(owner):
        raise DomainError(
            f"{person_name(owner)} cannot see {incident.reference} (restricted): add them to its responders first, "
            "or choose someone who can see it.",
            field="owner",
        )


# --- permissions --------------------------------------------------------------------------------------------


def can_edit(user, postmortem: PostMortem) -> bool:
    return access.can_respond(user) or (user is not None and user.pk == postmortem.owner_id)


def can_publish(user, postmortem: PostMortem) -> bool:
    """The guide's rule: only the Incident Commander, the post-mortem owner and managers publish."""
    if not access.can_view(user):
        return False
    if access.is_manager(user) or user.pk == postmortem.owner_id:
        return True
    commander = current_holder(postmortem.incident, Role.INCIDENT_COMMANDER)
    return commander is not None and commander.pk == user.pk


def require_edit(user, postmortem: PostMortem) -> None:
    if user is not None and not can_edit(user, postmortem):
        raise PermissionDenied("You need the responder role to edit post-mortems.")


def lock_postmortem(postmortem: PostMortem) -> PostMortem:
    # Incident first, then the post-mortem: the order change_status (which drafts) takes them in.
    Incident.objects.select_for_update().filter(pk=postmortem.incident_id).values_list("pk", flat=True).first()
    return (
        PostMortem.objects.select_for_update(of=("self",))
        .select_related("incident", "incident__severity")
        .get(pk=postmortem.pk)
    )


def require_editable(postmortem: PostMortem, field: str = "status") -> None:
    if not postmortem.is_editable:
        raise InvalidTransition("The post-mortem is published; its content is final.", field=field)


# --- dates -------------------------------------------------------------------------------------------------


def day_text(moment: datetime) -> str:
    return format_moment(local_time(moment).date())


def check_meeting_time(incident: Incident, meeting_at: datetime) -> None:
    """Not before the incident (nor its resolution, once resolved), and at most a year from now."""
    if meeting_at < incident.detected_at:
        raise DomainError("The meeting cannot be before the incident was detected.", field="meeting_at")
    if incident.resolved_at is not None and meeting_at < incident.resolved_at:
        raise DomainError("The meeting cannot be before the incident was resolved.", field="meeting_at")
    latest = timezone.now() + MEETING_MAX_AHEAD
    if meeting_at > latest:
        raise DomainError(f"Choose a meeting time within a year from now (by {day_text(latest)}).", field="meeting_at")


def check_due_date(due_date: date) -> None:
    """An action item is due from today to two years ahead. Checked only for a date being set or changed, so an
    overdue item keeps its past date while its owner, description or priority are edited."""
    today = timezone.localdate()
    if due_date < today:
        raise DomainError("The due date cannot be in the past.", field="due_date")
    latest = today + ACTION_ITEM_MAX_AHEAD
    if due_date > latest:
        raise DomainError(f"Choose a due date within two years (by {format_moment(latest)}).", field="due_date")


def check_timeline_time(incident: Incident, occurred_at: datetime) -> None:
    """A line the review found: not in the future, at most two years before the incident was detected."""
    if occurred_at > timezone.now() + FUTURE_TOLERANCE:
        raise DomainError("A timeline line cannot be in the future.", field="occurred_at")
    earliest = incident.detected_at - TIMELINE_MAX_BEFORE_INCIDENT
    if occurred_at < earliest:
        raise DomainError(
            f"Choose a time within two years before the incident (from {day_text(earliest)}).", field="occurred_at"
        )

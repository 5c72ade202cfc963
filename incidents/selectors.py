"""Reads for pages and the API, each in a fixed number of queries."""

from django.db.models import Prefetch

from .models import ACTIVE_STATUSES, Incident, RoleAssignment, TimelineEntry

CURRENT_ROLES = Prefetch(
    "role_assignments",
    queryset=RoleAssignment.objects.filter(relieved_at__isnull=True).select_related("holder"),
    to_attr="current_roles",
)


def access_incident(*, reference: str, user, lock: bool = False) -> Incident:
    """Fetch an incident by INC reference, only if `user` may see it (Incident.DoesNotExist otherwise, so
    callers answer 404 and a restricted incident's existence does not leak)."""
    number = parse_reference(reference)
    if number is None:
        raise Incident.DoesNotExist(reference)
    queryset = Incident.objects.visible_to(user).select_related("severity")
    if lock:
        queryset = queryset.select_for_update()
    return queryset.get(number=number)


def parse_reference(reference: str) -> int | None:
    text = (reference or "").strip().upper()
    if text.startswith("INC-"):
        text = text[4:]
    return int(text) if text.isdigit() and len(text) < 10 else None


def incident_for_page(*, reference: str, user) -> Incident:
    number = parse_reference(reference)
    if number is None:
        raise Incident.DoesNotExist(reference)
    return (
        Incident.objects.visible_to(user)
        .select_related("severity", "created_by", "acknowledged_by")
        .prefetch_related(CURRENT_ROLES, "services")
        .get(number=number)
    )


def active_incidents(*, user):
    return (
        Incident.objects.visible_to(user)
        .filter(status__in=ACTIVE_STATUSES)
        .select_related("severity")
        .prefetch_related(CURRENT_ROLES, "services")
        .order_by("severity__rank", "-declared_at")
    )


def timeline_after(*, incident: Incident, after_id: int = 0, limit: int = 200):
    """New entries since a cursor (the last id the viewer has): one indexed query."""
    return list(
        TimelineEntry.objects.filter(incident=incident, id__gt=after_id).select_related("author").order_by("id")[:limit]
    )

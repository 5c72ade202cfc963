"""Paging's reactions to the incident lifecycle, subscribed in PagingConfig.ready. Every handler runs inside the
publishing service's transaction (in_transaction=True): a page, its outbox rows and its timeline entries commit or
roll back with the incident change, under the incident row lock that service holds."""

from __future__ import annotations

from incidents import lifecycle
from incidents.models import Incident

from .models import Notification, Page
from .services.lifecycle import acknowledge_pages, start_paging, stop_paging


def _incident(event: lifecycle.LifecycleEvent) -> Incident:
    # The row the publishing service has locked and changed, read inside its transaction.
    return Incident.objects.select_related("severity").get(pk=event.incident_id)


def page_on_declared(event: lifecycle.IncidentDeclared) -> None:
    """Page the owning team per the severity and its escalation policy."""
    start_paging(incident=_incident(event), by=event.by, reason="declared")


def page_on_severity_raised(event: lifecycle.SeverityChanged) -> None:
    """Raised on an active incident: page again at the new severity (the open page, if any, is superseded)."""
    if not event.raised:
        return
    incident = _incident(event)
    if incident.is_active:
        start_paging(incident=incident, by=event.by, reason=f"severity raised to {event.new_level}")


def page_on_reopened(event: lifecycle.IncidentReopened) -> None:
    """Resolving stopped every page: page the owning team again, as declaring does, with a new page."""
    start_paging(incident=_incident(event), by=event.by, reason="re-opened")


def stop_on_resolved(event: lifecycle.IncidentResolved) -> None:
    stop_paging(incident=Incident(pk=event.incident_id), by=event.by, reason="incident resolved")


def stop_on_closed(event: lifecycle.IncidentClosed) -> None:
    stop_paging(incident=Incident(pk=event.incident_id), by=event.by, reason="incident closed")


def acknowledge_on_acknowledged(event: lifecycle.IncidentAcknowledged) -> None:
    """Every acknowledgement (also a repeat) stops escalation of every open page, including one started after the
    first acknowledgement because the severity was raised."""
    acknowledge_pages(incident=Incident(pk=event.incident_id), by=event.by)


def move_pages_of_merged_incident(event: lifecycle.IncidentMerged) -> None:
    """In the merge's transaction: the duplicate's pages stop (a timeline entry on it, moved with its timeline) and
    every page and notification moves to the incident it was merged into, so the paging panel shows them there."""
    duplicate = Incident.objects.get(pk=event.incident_id)
    stop_paging(incident=duplicate, by=event.by, reason=f"merged into {event.into_reference}")
    Page.objects.filter(incident_id=event.incident_id).update(incident_id=event.into_id)
    Notification.objects.filter(incident_id=event.incident_id).update(incident_id=event.into_id)


def subscribe() -> None:
    for event_type, handler in [
        (lifecycle.IncidentDeclared, page_on_declared),
        (lifecycle.SeverityChanged, page_on_severity_raised),
        (lifecycle.IncidentReopened, page_on_reopened),
        (lifecycle.IncidentResolved, stop_on_resolved),
        (lifecycle.IncidentClosed, stop_on_closed),
        (lifecycle.IncidentAcknowledged, acknowledge_on_acknowledged),
        (lifecycle.IncidentMerged, move_pages_of_merged_incident),
    ]:
        lifecycle.subscribe(event_type, handler, in_transaction=True)

"""What paging does when something happens to an incident (registered in PagingConfig.ready)."""

from incidents import lifecycle
from incidents.models import Incident

from .models import Notification, Page
from .services import stop_paging


def move_pages_of_merged_incident(event: lifecycle.IncidentMerged) -> None:
    """In the merge's transaction: the duplicate's pages stop (a timeline entry on it, moved with its timeline) and
    every page and notification moves to the incident it was merged into, so the paging panel shows them there."""
    duplicate = Incident.objects.get(pk=event.incident_id)
    stop_paging(incident=duplicate, by=event.by, reason=f"merged into {event.into_reference}")
    Page.objects.filter(incident_id=event.incident_id).update(incident_id=event.into_id)
    Notification.objects.filter(incident_id=event.incident_id).update(incident_id=event.into_id)

"""Post-mortems' reaction to the incident lifecycle, subscribed in PostmortemsConfig.ready."""

from __future__ import annotations

from incidents import lifecycle
from incidents.models import Incident

from .services.drafting import ensure_draft_for


def draft_on_resolved(event: lifecycle.IncidentResolved) -> None:
    """The guide: a post-mortem within 48 h of resolution. Drafted inside the resolving transaction, so a resolved
    incident never lacks its post-mortem; idempotent when a re-opened incident is resolved again."""
    incident = Incident.objects.select_related("severity").get(pk=event.incident_id)
    ensure_draft_for(incident=incident, by=event.by)


def subscribe() -> None:
    lifecycle.subscribe(lifecycle.IncidentResolved, draft_on_resolved, in_transaction=True)

"""Change events (deploys, feature flags, configuration changes) recorded for the "recent changes" next to an
incident; a change to a service with an open incident is also on that incident's timeline (change_detected)."""

from __future__ import annotations

from django.db import transaction

from incidents import timeline
from incidents.audit.recorder import BulkRecorder
from incidents.models import Incident, Service

from ..models import ChangeEvent, Integration
from ..parsers import ChangeIn, clamp_to_now


@transaction.atomic
def record_change_events(*, integration: Integration | None, changes: list[ChangeIn]) -> list[ChangeEvent]:
    """Unknown service slugs are refused (ValueError naming the field) rather than recorded unattached: a change
    nobody can find next to an incident is worth nothing."""
    slugs = {c.service_slug for c in changes if c.service_slug}
    services = {s.slug: s for s in Service.objects.filter(slug__in=slugs)} if slugs else {}
    rows = []
    for index, change in enumerate(changes):
        service = services.get(change.service_slug) if change.service_slug else None
        if change.service_slug and service is None:
            raise UnknownService(change.service_slug, index=index if len(changes) > 1 else None)
        if service is None and integration is not None and integration.default_service_id:
            service = integration.default_service
        rows.append(
            ChangeEvent(
                integration=integration,
                service=service,
                kind=change.kind,
                summary=change.summary,
                description=change.description,
                source=change.source,
                link=change.link,
                occurred_at=clamp_to_now(change.occurred_at),
                details=change.details,
            )
        )
    created = ChangeEvent.objects.bulk_create(rows)
    audit = BulkRecorder()
    for change_event in created:
        audit.created(change_event)
    for entry in timeline.record_all(_on_open_incidents(created)):
        audit.created(entry, incident_id=entry.incident_id)
    audit.flush()
    return created


def _on_open_incidents(changes: list[ChangeEvent]) -> list:
    """A change_detected timeline entry for each change and each open incident of the change's service (one query
    finds them): a deploy during an incident is part of its story."""
    service_ids = {change.service_id for change in changes if change.service_id}
    if not service_ids:
        return []
    incidents_of: dict[int, list[int]] = {}
    for incident_id, service_id in Incident.services.through.objects.filter(
        service_id__in=service_ids, incident__in=Incident.objects.active()
    ).values_list("incident_id", "service_id"):
        incidents_of.setdefault(service_id, []).append(incident_id)
    return [
        timeline.change_detected(Incident(pk=incident_id), change=change)
        for change in changes
        for incident_id in sorted(incidents_of.get(change.service_id, ()))
    ]


class UnknownService(Exception):
    def __init__(self, slug: str, *, index: int | None):
        self.slug = slug
        self.field = f"changes[{index}].service" if index is not None else "service"
        super().__init__(f"No service with slug {slug!r}.")

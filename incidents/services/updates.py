"""Internal and status-page updates in the guide's templates, with the update-cadence clock they reset."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .. import timeline
from ..errors import DomainError, InvalidTransition
from ..models import UPDATE_STATUSES_BY_KIND, Incident, Service, Status, StatusUpdate, UpdateKind, UpdateStatus
from ..statuspage import services as statuspage
from .checklist import tick_facts
from .rules import check_next_update_at, lock_incident, require_responder


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
    require_responder(by)
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
    incident = lock_incident(incident)
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
        tick_facts(incident, "status_page_updated", *(["status_page_resolved"] if resolved else []))
    elif kind == UpdateKind.INTERNAL:
        tick_facts(incident, "internal_update_sent", *(["internal_resolution_sent"] if resolved else []))
    return update

"""Checklists (ticked by people, or by the portal when a fact it records answers an item) and runbooks attached to
an incident."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .. import timeline
from ..errors import DomainError, InvalidTransition
from ..models import ChecklistItem, ChecklistPhase, Incident, IncidentRunbook, Runbook, Status
from .rules import lock_incident, require_responder


@transaction.atomic
def tick_checklist_item(*, item: ChecklistItem, by, checked: bool = True) -> ChecklistItem:
    require_responder(by)
    incident = lock_incident(item.incident)
    item = ChecklistItem.objects.select_for_update().get(pk=item.pk, incident=incident)
    if incident.status == Status.CLOSED:
        raise InvalidTransition(f"{incident.reference} is closed; its checklists are final.", field="item")
    if item.is_checked == checked:
        return item  # a double click or a stale form: already in the state asked for
    item.checked_at = timezone.now() if checked else None
    item.checked_by = by if checked else None
    item.save(update_fields=["checked_at", "checked_by"])
    timeline.record(timeline.checklist_ticked(incident, item=item, checked=checked, by=by))
    return item


# Checklist items that are facts the portal records itself: ticked when the fact happens (by whoever made it
# happen), each with its timeline entry. People still tick the rest. Matched by phase and the guide's wording.
CHECKLIST_FACTS = {
    "ic_assigned": [(ChecklistPhase.DETECTION, "IC assigned")],
    "acknowledged": [(ChecklistPhase.DETECTION, "Alert acknowledged")],
    "status_page_updated": [(ChecklistPhase.RESPONSE, "Status page updated")],
    "status_page_resolved": [
        (ChecklistPhase.RESOLUTION, "Status page updated"),
        (ChecklistPhase.CLOSURE, 'Status page updated to "Resolved"'),
    ],
    "internal_update_sent": [(ChecklistPhase.RESPONSE, "Internal communication sent")],
    "internal_resolution_sent": [(ChecklistPhase.CLOSURE, "Internal communication sent")],
    "resolved": [(ChecklistPhase.CLOSURE, "Incident resolved")],
    "postmortem_scheduled": [
        (ChecklistPhase.RECOVERY, "Schedule post-mortem"),
        (ChecklistPhase.CLOSURE, "Post-mortem scheduled"),
    ],
}


def tick_facts(incident: Incident, *facts: str) -> list[ChecklistItem]:
    """Inside the caller's transaction, with the incident locked: tick the still-open items these facts answer.
    The portal ticks them (checked_by and the entry's author are empty: "the portal"), as a consequence of the
    change its caller recorded."""
    wanted = [pair for fact in facts for pair in CHECKLIST_FACTS[fact]]
    if not wanted or incident.status == Status.CLOSED:
        return []
    candidates = (
        ChecklistItem.objects.select_for_update()
        .filter(incident=incident, checked_at__isnull=True, phase__in={phase for phase, _ in wanted})
        .order_by("phase", "position")  # not the default ordering: its runbook join cannot be locked
    )
    items = [item for item in candidates if (item.phase, item.text) in wanted]
    now = timezone.now()
    for item in items:
        item.checked_at, item.checked_by = now, None
    if items:
        ChecklistItem.objects.bulk_update(items, ["checked_at", "checked_by"])
        timeline.record_all([timeline.checklist_ticked(incident, item=item, checked=True, by=None) for item in items])
    return items


@transaction.atomic
def record_checklist_fact(*, incident: Incident, fact: str) -> list[ChecklistItem]:
    """For other apps (post-mortems: a meeting scheduled): tick the checklist items `fact` answers."""
    if fact not in CHECKLIST_FACTS:
        raise DomainError(f"Unknown checklist fact {fact!r}.", field="fact")
    return tick_facts(lock_incident(incident), fact)


def check_runbook_attachment(incident: Incident, *, runbook: Runbook) -> None:
    """Raises DomainError when attach_runbook would refuse; writes nothing."""
    if IncidentRunbook.objects.filter(incident=incident, runbook=runbook).exists():
        raise DomainError(f"{runbook.title} is already attached.", field="runbook")


def link_runbook(incident: Incident, *, runbook: Runbook, by) -> IncidentRunbook:
    check_runbook_attachment(incident, runbook=runbook)
    link = IncidentRunbook.objects.create(incident=incident, runbook=runbook, attached_by=by)
    ChecklistItem.objects.bulk_create(
        ChecklistItem(
            incident=incident,
            phase=ChecklistPhase.RUNBOOK,
            position=step.position,
            text=step.text,
            command=step.command,
            runbook=runbook,
        )
        for step in runbook.steps.all()
    )
    timeline.record(timeline.runbook_attached(incident, runbook=runbook, by=by))
    return link


@transaction.atomic
def attach_runbook(*, incident: Incident, runbook: Runbook, by) -> IncidentRunbook:
    """Attach a runbook; its immediate actions become a checklist on the incident."""
    require_responder(by)
    incident = lock_incident(incident)
    return link_runbook(incident, runbook=runbook, by=by)

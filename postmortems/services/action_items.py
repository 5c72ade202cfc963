"""Action items: added, edited and moved along by the post-mortem's editors and their owners."""

from __future__ import annotations

from datetime import date

from django.db import transaction
from django.utils import timezone

from incidents import access, timeline
from incidents.errors import DomainError, PermissionDenied
from incidents.models import Incident
from incidents.timeline import postmortems as postmortem_timeline
from oncall.models import Person

from ..models import ActionItem, ActionItemPriority, ActionItemStatus, ActionItemType, PostMortem
from .rules import check_due_date, check_owner_sees_incident, lock_postmortem, require_edit

# --- action items ------------------------------------------------------------------------------------------


def _choice(value: str, choices, field: str) -> str:
    if value not in choices.values:
        allowed = ", ".join(choices.labels)
        raise DomainError(f"Choose one of: {allowed}.", field=field)
    return value


def _owner_person(owner):
    return Person.objects.filter(user=owner).first()


@transaction.atomic
def add_action_item(
    *,
    postmortem: PostMortem,
    by,
    title: str,
    owner,
    due_date: date,
    description: str = "",
    priority: str = ActionItemPriority.MEDIUM,
    kind: str = ActionItemType.PREVENT,
) -> ActionItem:
    require_edit(by, postmortem)
    title = (title or "").strip()
    if not title:
        raise DomainError("Give the action item a title.", field="title")
    if owner is None or not owner.is_active:
        raise DomainError("Choose an active owner.", field="owner")
    check_owner_sees_incident(owner, postmortem.incident)
    if due_date is None:
        raise DomainError("Choose a due date.", field="due_date")
    check_due_date(due_date)
    _choice(priority, ActionItemPriority, "priority")
    _choice(kind, ActionItemType, "kind")
    postmortem = lock_postmortem(postmortem)
    item = ActionItem.objects.create(
        postmortem=postmortem,
        incident=postmortem.incident,
        title=title[:200],
        description=(description or "").strip(),
        owner=owner,
        owner_person=_owner_person(owner),
        due_date=due_date,
        priority=priority,
        kind=kind,
        created_by=by,
    )
    timeline.record(postmortem_timeline.action_item_added(postmortem.incident, item=item, by=by))
    return item


def _lock_item(item: ActionItem) -> ActionItem:
    Incident.objects.select_for_update().filter(pk=item.incident_id).values_list("pk", flat=True).first()
    return ActionItem.objects.select_for_update(of=("self",)).select_related("postmortem", "owner").get(pk=item.pk)


def _require_item_edit(user, item: ActionItem) -> None:
    if user is not None and not (access.can_respond(user) or user.pk == item.owner_id):
        raise PermissionDenied("Only responders and the item's owner can change an action item.")


@transaction.atomic
def update_action_item(
    *,
    item: ActionItem,
    by,
    title: str | None = None,
    description: str | None = None,
    owner=None,
    due_date: date | None = None,
    priority: str | None = None,
    kind: str | None = None,
) -> ActionItem:
    """Change an action item's details. A new due date re-arms both reminders (they fire once per date)."""
    _require_item_edit(by, item)
    item = _lock_item(item)
    if title is not None:
        if not title.strip():
            raise DomainError("Give the action item a title.", field="title")
        item.title = title.strip()[:200]
    if description is not None:
        item.description = description.strip()
    if owner is not None and owner.pk != item.owner_id:
        if not owner.is_active:
            raise DomainError("Choose an active owner.", field="owner")
        check_owner_sees_incident(owner, item.incident)
        item.owner, item.owner_person = owner, _owner_person(owner)
        item.reminded_before_at = item.reminded_overdue_at = None
    if due_date is not None and due_date != item.due_date:
        check_due_date(due_date)
        item.due_date = due_date
        item.reminded_before_at = item.reminded_overdue_at = None
    if priority is not None:
        item.priority = _choice(priority, ActionItemPriority, "priority")
    if kind is not None:
        item.kind = _choice(kind, ActionItemType, "kind")
    item.save()
    return item


@transaction.atomic
def change_action_item_status(*, item: ActionItem, to: str, by) -> ActionItem:
    _choice(to, ActionItemStatus, "status")
    _require_item_edit(by, item)
    item = _lock_item(item)
    if item.status == to:
        return item  # a double click: already there
    old = ActionItemStatus(item.status)
    item.status = to
    item.completed_at = timezone.now() if to in (ActionItemStatus.DONE, ActionItemStatus.WONT_DO) else None
    item.save(update_fields=["status", "completed_at"])
    timeline.record(
        postmortem_timeline.action_item_status_changed(
            item.incident, item=item, old=old, new=ActionItemStatus(to), by=by
        )
    )
    return item

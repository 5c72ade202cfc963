"""Reads for the post-mortem pages, each in a fixed number of queries. Visibility follows the incident's:
every queryset here starts from PostMortem/ActionItem .visible_to(user)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.utils import timezone

from incidents.models import EventType, Incident, TimelineEntry
from incidents.selectors import parse_reference

from .models import OPEN_ACTION_STATUSES, ActionItem, PostMortem, PostMortemStatus, PostMortemTimelineItem

LIST_LIMIT = 200
MY_ITEMS_LIMIT = 200


def postmortem_for_page(*, pk: int, user) -> PostMortem:
    """PostMortem.DoesNotExist when missing or when the user may not see its incident (the view answers 404)."""
    return (
        PostMortem.objects.visible_to(user)
        .select_related("incident", "incident__severity", "owner", "published_by")
        .prefetch_related("attendees")
        .get(pk=pk)
    )


def postmortem_of_incident(*, reference: str, user) -> PostMortem:
    number = parse_reference(reference)
    if number is None:
        raise PostMortem.DoesNotExist(reference)
    visible = Incident.objects.visible_to(user).filter(number=number).values("pk")
    return PostMortem.objects.get(incident__in=visible)


def postmortem_list(*, user, status: str = ""):
    queryset = PostMortem.objects.visible_to(user).select_related("incident", "incident__severity", "owner")
    if status in PostMortemStatus.values:
        queryset = queryset.filter(status=status)
    return list(
        queryset.annotate(
            open_items=Count("action_items", filter=Q(action_items__status__in=OPEN_ACTION_STATUSES)),
            total_items=Count("action_items"),
        ).order_by("-created_at", "-id")[:LIST_LIMIT]
    )


@dataclass
class TimelineLine:
    """A row of the timeline editor: an incident timeline entry (with its post-mortem line, if any) or a
    line added by hand."""

    key: str
    occurred_at: datetime
    text: str
    is_included: bool
    is_key_event: bool = False
    is_added: bool = False
    event_type: str = ""

    @property
    def event_label(self) -> str:
        return EventType(self.event_type).label if self.event_type in EventType.values else ""


def timeline_lines(*, postmortem: PostMortem) -> list[TimelineLine]:
    """Every entry of the incident's timeline merged with the post-mortem's lines: two queries."""
    items = list(PostMortemTimelineItem.objects.filter(postmortem=postmortem))
    by_entry = {item.entry_id: item for item in items if item.entry_id}
    lines = []
    entries = TimelineEntry.objects.filter(incident_id=postmortem.incident_id).values_list(
        "id", "occurred_at", "body", "is_key_event", "event_type"
    )
    for entry_id, occurred_at, body, is_key_event, event_type in entries:
        item = by_entry.get(entry_id)
        text = item.text if item else " ".join((body or "").strip().split("\n\n", 1)[0].split())[:500]
        lines.append(
            TimelineLine(
                f"entry:{entry_id}",
                occurred_at,
                text,
                bool(item and item.is_included),
                is_key_event=is_key_event,
                event_type=event_type,
            )
        )
    lines += [
        TimelineLine(f"item:{item.pk}", item.occurred_at, item.text, item.is_included, is_added=True)
        for item in items
        if item.entry_id is None
    ]
    return sorted(lines, key=lambda line: (line.occurred_at, line.key))


def action_item_for_page(*, pk: int, user) -> ActionItem:
    return (
        ActionItem.objects.visible_to(user)
        .select_related("postmortem", "incident", "incident__severity", "owner")
        .get(pk=pk)
    )


def my_action_items(*, user, include_closed: bool = False, limit: int = MY_ITEMS_LIMIT):
    """The user's action items, open ones first by due date. One query."""
    if user is None or not user.is_authenticated:
        return []
    queryset = ActionItem.objects.visible_to(user).filter(owner=user)
    if not include_closed:
        queryset = queryset.still_open()
    return list(
        queryset.select_related("incident", "incident__severity", "postmortem").order_by("due_date", "id")[:limit]
    )


def overdue_action_items(*, user, limit: int = LIST_LIMIT):
    """Every open item past its due date, most overdue first (for managers). One query."""
    return list(
        ActionItem.objects.visible_to(user)
        .overdue(timezone.localdate())
        .select_related("incident", "incident__severity", "owner", "postmortem")
        .order_by("due_date", "id")[:limit]
    )


def people_to_choose():
    """Owners and attendees: active users, by name."""
    return get_user_model().objects.filter(is_active=True).order_by("first_name", "last_name", "username")

"""Editing a post-mortem: its owner, its text sections, its timeline (lines kept, edited, added) and the review
meeting."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from django.db import transaction

from incidents import timeline
from incidents.errors import DomainError
from incidents.markdown import render_markdown
from incidents.models import TimelineEntry
from incidents.services.checklist import record_checklist_fact
from incidents.timeline import postmortems as postmortem_timeline

from ..models import MARKDOWN_SECTIONS, PostMortem, PostMortemTimelineItem
from .drafting import TIMELINE_TEXT_MAX, timeline_item
from .rules import (
    check_meeting_time,
    check_owner_sees_incident,
    check_timeline_time,
    lock_postmortem,
    require_edit,
    require_editable,
)

# --- content ------------------------------------------------------------------------------------------------


@transaction.atomic
def assign_owner(*, postmortem: PostMortem, owner, by) -> PostMortem:
    """Hand the post-mortem to someone else to write (the owner may publish it)."""
    require_edit(by, postmortem)
    if owner is None or not owner.is_active:
        raise DomainError("Choose an active owner.", field="owner")
    postmortem = lock_postmortem(postmortem)
    require_editable(postmortem, field="owner")
    check_owner_sees_incident(owner, postmortem.incident)
    if postmortem.owner_id != owner.pk:
        postmortem.owner = owner
        postmortem.save(update_fields=["owner", "updated_at"])
        timeline.record(
            postmortem_timeline.postmortem_owner_changed(postmortem.incident, postmortem=postmortem, owner=owner, by=by)
        )
    return postmortem


EDITABLE_TEXT_FIELDS = [field for field, _ in MARKDOWN_SECTIONS] + ["title", "users_affected", "revenue_impact"]


@transaction.atomic
def update_content(*, postmortem: PostMortem, by, **fields) -> PostMortem:
    """Edit the template's sections (Markdown) and the impact figures while draft or in review."""
    unknown = set(fields) - set(EDITABLE_TEXT_FIELDS)
    if unknown:
        raise DomainError(f"Unknown post-mortem field {sorted(unknown)[0]!r}.", field=sorted(unknown)[0])
    require_edit(by, postmortem)
    postmortem = lock_postmortem(postmortem)
    require_editable(postmortem, field=next(iter(fields), "status"))
    if "title" in fields and not (fields["title"] or "").strip():
        raise DomainError("Give the post-mortem a title.", field="title")
    for name, value in fields.items():
        value = (value or "").strip()
        max_length = PostMortem._meta.get_field(name).max_length
        if max_length and len(value) > max_length:
            raise DomainError(f"Keep it under {max_length} characters.", field=name)
        setattr(postmortem, name, value)
    postmortem.save()
    return postmortem


def _line_text(value: str) -> str:
    text = (value or "").strip()
    if not text:
        raise DomainError("A timeline line cannot be empty; untick it instead.", field="timeline")
    if "\x00" in text:
        raise DomainError("A timeline line cannot contain null characters.", field="timeline")
    return text[:TIMELINE_TEXT_MAX]


def _parse_line_keys(keys) -> tuple[set[int], set[int]]:
    entry_ids, item_ids = set(), set()
    for key in keys:
        kind, _, number = str(key).partition(":")
        if kind not in {"entry", "item"} or not number.isdigit() or len(number) > 18:
            raise DomainError(f"Unknown timeline line {key!r}.", field="timeline")
        (entry_ids if kind == "entry" else item_ids).add(int(number))
    return entry_ids, item_ids


@transaction.atomic
def update_timeline(*, postmortem: PostMortem, by, include: Iterable[str], texts: Mapping[str, str] | None = None):
    """Choose the post-mortem's timeline lines and correct their wording. A line is named "entry:<id>" (an entry
    of the incident's timeline) or "item:<id>" (a line added by hand). Unticking keeps a line's edited wording
    for later; the incident's own timeline never changes."""
    require_edit(by, postmortem)
    postmortem = lock_postmortem(postmortem)
    require_editable(postmortem, field="timeline")
    include, texts = set(include), dict(texts or {})
    entry_ids, item_ids = _parse_line_keys(include | set(texts))
    items = list(PostMortemTimelineItem.objects.filter(postmortem=postmortem).select_for_update())
    by_entry = {item.entry_id: item for item in items if item.entry_id}
    if item_ids - {item.pk for item in items}:
        raise DomainError("That timeline line is not part of this post-mortem.", field="timeline")
    new_ids = {pk for pk in entry_ids - by_entry.keys() if f"entry:{pk}" in include}
    entries = TimelineEntry.objects.filter(incident_id=postmortem.incident_id, pk__in=new_ids)
    created = []
    for row in entries.values_list("id", "occurred_at", "body", "body_html", "is_key_event"):
        item = timeline_item(postmortem, *row)
        item.is_included = True
        if f"entry:{item.entry_id}" in texts:
            item.text = _line_text(texts[f"entry:{item.entry_id}"])
            item.text_html = render_markdown(item.text)
        created.append(item)
    if len(created) != len(new_ids):
        raise DomainError("That entry is not part of this incident's timeline.", field="timeline")
    changed = []
    for item in items:
        key = f"entry:{item.entry_id}" if item.entry_id else f"item:{item.pk}"
        dirty = (key in include) != item.is_included
        item.is_included = key in include
        if key in texts and texts[key].strip() != item.text:
            item.text = _line_text(texts[key])
            item.text_html = render_markdown(item.text)
            dirty = True
        if dirty:
            changed.append(item)
    PostMortemTimelineItem.objects.bulk_create(created)
    PostMortemTimelineItem.objects.bulk_update(changed, ["text", "text_html", "is_included"])
    return postmortem


@transaction.atomic
def add_timeline_item(*, postmortem: PostMortem, by, occurred_at: datetime, text: str) -> PostMortemTimelineItem:
    """A line the incident timeline lacks (e.g. the deploy that caused it, found during the review)."""
    require_edit(by, postmortem)
    text = (text or "").strip()
    if not text:
        raise DomainError("Say what happened.", field="text")
    if occurred_at is None:
        raise DomainError("Say when it happened.", field="occurred_at")
    postmortem = lock_postmortem(postmortem)
    require_editable(postmortem, field="text")
    check_timeline_time(postmortem.incident, occurred_at)
    text = text[:TIMELINE_TEXT_MAX]
    return PostMortemTimelineItem.objects.create(
        postmortem=postmortem, occurred_at=occurred_at, text=text, text_html=render_markdown(text), is_included=True
    )


# --- meeting ------------------------------------------------------------------------------------------------


@transaction.atomic
def schedule_meeting(
    *, postmortem: PostMortem, by, meeting_at: datetime, attendees: Iterable | None = None, location: str = ""
) -> PostMortem:
    """Set the meeting time and attendees (None keeps the current list), and tick the closure checklist's
    "Post-mortem scheduled"."""
    require_edit(by, postmortem)
    if meeting_at is None:
        raise DomainError("Choose the meeting time.", field="meeting_at")
    postmortem = lock_postmortem(postmortem)
    require_editable(postmortem, field="meeting_at")
    check_meeting_time(postmortem.incident, meeting_at)
    was_scheduled = postmortem.meeting_at is not None
    postmortem.meeting_at = meeting_at
    postmortem.meeting_location = (location or "").strip()[:200]
    postmortem.save(update_fields=["meeting_at", "meeting_location", "updated_at"])
    if attendees is not None:
        postmortem.attendees.set(list(attendees))
    incident = postmortem.incident
    timeline.record(
        postmortem_timeline.postmortem_meeting_scheduled(
            incident, postmortem=postmortem, rescheduled=was_scheduled, by=by
        )
    )
    # The closure checklist's "Post-mortem scheduled" (and recovery's "Schedule post-mortem") are now facts.
    record_checklist_fact(incident=incident, fact="postmortem_scheduled")
    return postmortem

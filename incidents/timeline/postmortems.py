"""Timeline builders for post-mortems and their action items, written on the incident's timeline."""

from __future__ import annotations

from datetime import datetime

from ..models import EventType, TimelineEntry
from ..profiles.zones import format_moment
from . import build, iso, person_name, utc_time


def _local(moment: datetime) -> str:
    return utc_time(moment)


def postmortem_drafted(incident, *, postmortem, by) -> TimelineEntry:
    return build(
        incident,
        EventType.POSTMORTEM_DRAFTED,
        f"Post-mortem drafted; the meeting is due by {_local(postmortem.due_at)}.",
        data={"postmortem_id": postmortem.pk, "due_at": iso(postmortem.due_at)},
        by=by,
    )


def postmortem_owner_changed(incident, *, postmortem, owner, by) -> TimelineEntry:
    return build(
        incident,
        EventType.POSTMORTEM_OWNER_CHANGED,
        f"Post-mortem owner is now {person_name(owner)}.",
        data={"postmortem_id": postmortem.pk, "owner_id": owner.pk},
        by=by,
    )


def postmortem_meeting_scheduled(incident, *, postmortem, rescheduled: bool, by) -> TimelineEntry:
    late = " (later than the guide's 48 hours)" if postmortem.meeting_at > postmortem.due_at else ""
    return build(
        incident,
        EventType.POSTMORTEM_MEETING_SCHEDULED,
        f"Post-mortem meeting {'re' if rescheduled else ''}scheduled for {_local(postmortem.meeting_at)}{late}.",
        data={
            "postmortem_id": postmortem.pk,
            "meeting_at": iso(postmortem.meeting_at),
            "location": postmortem.meeting_location,
            "rescheduled": rescheduled,
        },
        by=by,
    )


def postmortem_status_changed(incident, *, postmortem, old, new, by, published: bool) -> TimelineEntry:
    return build(
        incident,
        EventType.POSTMORTEM_STATUS_CHANGED,
        f"Post-mortem moved from {old.label} to **{new.label}**.",
        data={"postmortem_id": postmortem.pk, "from": str(old), "to": str(new)},
        by=by,
        is_key_event=published,
    )


def postmortem_report_resent(incident, *, postmortem, by) -> TimelineEntry:
    return build(
        incident,
        EventType.POSTMORTEM_REPORT_RESENT,
        "Post-mortem report re-sent.",
        data={"postmortem_id": postmortem.pk},
        by=by,
    )


def action_item_added(incident, *, item, by) -> TimelineEntry:
    return build(
        incident,
        EventType.ACTION_ITEM_ADDED,
        f"Action item added: {item.title} (owner {_owner_name(item.owner)}, due {format_moment(item.due_date)}).",
        data={
            "action_item_id": item.pk,
            "postmortem_id": item.postmortem_id,
            "owner_id": item.owner_id,
            "due_date": item.due_date.isoformat(),
        },
        by=by,
    )


def action_item_status_changed(incident, *, item, old, new, by) -> TimelineEntry:
    return build(
        incident,
        EventType.ACTION_ITEM_STATUS_CHANGED,
        f'Action item "{item.title}": {old.label} -> **{new.label}**.',
        data={"action_item_id": item.pk, "from": str(old), "to": str(new)},
        by=by,
    )


def _owner_name(user) -> str:
    if user is None:
        return "nobody assigned"
    return user.get_full_name() or user.get_username()

"""Timeline builders for paging (started, levels paged, acknowledged, stopped, failed notifications, added
responders) and the reminders the paging timers write (acknowledge target missed, update overdue, time to close).
They go through incidents.timeline.build like every builder."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..models import EventType, TimelineEntry
from . import build, iso, person_name, pk_of, utc_time


def paging_unavailable(incident) -> TimelineEntry:
    return build(
        incident,
        EventType.PAGING_UNAVAILABLE,
        "Nobody was paged: there is no escalation policy for the owning team and no default policy.",
    )


def paging_started(incident, *, page, team, policy, superseded: bool, reason: str) -> TimelineEntry:
    who = f" for {team}" if team else ""
    body = f"Paging started{who} ({incident.severity.level}, {policy})" + (
        "; the previous page is superseded." if superseded else "."
    )
    data = {
        "page_id": page.pk,
        "team_id": pk_of(team),
        "policy_id": policy.pk,
        "severity": incident.severity.level,
        "superseded": superseded,
        "reason": reason,
    }
    return build(incident, EventType.PAGING_STARTED, body, data=data)


def level_paged(
    page, *, level: int, level_name: str, repeat: int, passes: int, reached: list[str], unreachable: list[str]
) -> TimelineEntry:
    """A level of the escalation policy fired: `paged` for the first level of the first pass, `escalated` after."""
    body = f"Paged level {level + 1} ({level_name})"
    if repeat:
        body += f", repeat {repeat + 1} of {passes}"
    body += ": " + ("; ".join(reached) if reached else "nobody could be reached") + "."
    if unreachable:
        body += " Not reachable: " + "; ".join(unreachable) + "."
    event_type = EventType.PAGED if level == 0 and repeat == 0 else EventType.ESCALATED
    data = {
        "page_id": page.pk,
        "level": level + 1,
        "repeat": repeat + 1,
        "reached": reached,
        "unreachable": unreachable,
    }
    return build(page.incident, event_type, body, data=data, plain=True)


def hotlines_alerted(page, *, hotlines: list[str], passes: int) -> TimelineEntry:
    names = ", ".join(hotlines) or "none configured"
    return build(
        page.incident,
        EventType.HOTLINES_ALERTED,
        f"Nobody acknowledged after {passes} passes through the escalation policy: alerting the escalation "
        f"hotlines ({names}).",
        data={"page_id": page.pk, "hotlines": hotlines},
        is_key_event=True,
        plain=True,
    )


def page_acknowledged(incident, *, page, name: str, via: str, by, person=None) -> TimelineEntry:
    level = f" at level {page.level_number}" if page.level_number else ""
    return build(
        incident,
        EventType.PAGE_ACKNOWLEDGED,
        f"Paging acknowledged by {name}{level} ({via}); escalation stopped.",
        data={"page_id": page.pk, "level": page.level_number, "via": via, "person_id": pk_of(person)},
        by=by,
    )


def paging_stopped(incident, *, reason: str, pages: Iterable, by) -> TimelineEntry:
    return build(
        incident,
        EventType.PAGING_STOPPED,
        f"Paging stopped: {reason}.",
        data={"reason": reason, "page_ids": [page.pk for page in pages]},
        by=by,
    )


def notification_failed(incident, *, notification, reason: str, fallback=None) -> TimelineEntry:
    body = f"Could not notify {notification.recipient} by {notification.get_channel_display()}"
    if notification.address and notification.channel != "webhook":
        body += f" ({notification.address})"
    body += f": {reason}."
    if fallback is not None:
        body += f" Trying their next notification rule now: {fallback.get_channel_display()}."
    elif notification.person_id and notification.hotline_id is None:
        body += " No other notification rule is left to try."
    data = {
        "notification_id": notification.pk,
        "page_id": notification.page_id,
        "channel": notification.channel,
        "recipient": notification.recipient,
        "reason": reason,
        "fallback_channel": fallback.channel if fallback is not None else None,
    }
    return build(incident, EventType.NOTIFICATION_FAILED, body, data=data)


def escalation_requested(page, *, name: str, via: str) -> TimelineEntry:
    """Someone paged asked to escalate now (a key pressed on a page call)."""
    return build(
        page.incident,
        EventType.ESCALATED,
        f"{name} asked to escalate now ({via}).",
        data={"page_id": page.pk, "requested_by": name, "via": via},
        plain=True,
    )


def responders_paged(incident, *, page, target: str, how: str, message: str, by) -> TimelineEntry:
    """An added responder: another team paged through its escalation policy, or one person by their rules."""
    body = f"{person_name(by)} paged {target} ({how})" + (f": {message}" if message else ".")
    data = {
        "page_id": page.pk,
        "team_id": page.team_id,
        "person_id": page.target_person_id,
        "target": target,
        "message": message,
    }
    return build(incident, EventType.PAGED, body, data=data, by=by, plain=True)


def added_page_unanswered(page, *, target: str) -> TimelineEntry:
    return build(
        page.incident,
        EventType.ESCALATED,
        f"Nobody from {target} acknowledged the added-responder page.",
        data={"page_id": page.pk, "target": target},
        plain=True,
    )


def acknowledge_target_missed(incident, *, page, target_minutes: int) -> TimelineEntry:
    return build(
        incident,
        EventType.ACKNOWLEDGE_TARGET_MISSED,
        f"Acknowledge target missed: nobody acknowledged within {target_minutes} minutes of being paged "
        f"(due {utc_time(page.acknowledge_due_at)}). Escalation continues.",
        data={"page_id": page.pk, "due_at": iso(page.acknowledge_due_at), "target_minutes": target_minutes},
        is_key_event=True,
    )


def update_overdue(incident, *, due_at: datetime, cadence_minutes: int | None, reminded: list[str]) -> TimelineEntry:
    every = f" ({incident.severity.level}: every {cadence_minutes} min)" if cadence_minutes is not None else ""
    who = ", ".join(reminded) if reminded else "nobody (no Incident Commander or Communications Lead to remind)"
    return build(
        incident,
        EventType.UPDATE_OVERDUE,
        f"Internal update overdue (due {utc_time(due_at)}{every}). Reminded: {who}.",
        data={"due_at": iso(due_at), "reminded": reminded},
    )


def close_reminder(incident, *, open_items: int, reminded: list[str]) -> TimelineEntry:
    who = ", ".join(reminded) if reminded else "nobody (no Incident Commander)"
    return build(
        incident,
        EventType.CLOSE_REMINDER,
        f"Resolved for 24 hours: time to complete the closure checklist ({open_items} open) and close. "
        f"Reminded: {who}.",
        data={"open_items": open_items, "reminded": reminded},
    )

"""Drafting: the post-mortem drafted when an incident is resolved, filled from the incident (summary, impact,
response times, root cause from the five whys, the key timeline entries), and the formatting it uses."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from incidents import timeline
from incidents.markdown import render_markdown
from incidents.models import FiveWhys, Incident, IncidentResponder, Role, TimelineEntry
from incidents.profiles.zones import format_moment, format_moment_utc
from incidents.selectors import current_holder
from incidents.timeline import postmortems as postmortem_timeline

from ..models import MEETING_WITHIN, PostMortem, PostMortemTimelineItem
from .rules import local_time, person_name

TIMELINE_TEXT_MAX = 500


# --- formatting helpers used by the draft ----------------------------------------------------------------


def humanize_duration(value: timedelta | None) -> str:
    """The guide's style, exact to the second: "2 hours 15 minutes", "3 minutes 20 seconds", "1 day 4 hours"."""
    if value is None:
        return "not recorded"
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0 seconds"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts)


def plain_line(markdown_text: str) -> str:
    """A timeline entry body as one line of the post-mortem timeline (the first paragraph, shortened)."""
    first = (markdown_text or "").strip().split("\n\n", 1)[0].replace("\n", " ").strip()
    return first[: TIMELINE_TEXT_MAX - 1] + "…" if len(first) > TIMELINE_TEXT_MAX else first


def response_times(incident: Incident) -> list[tuple[str, timedelta | None]]:
    """The detection and response times of the guide's summary, from the incident's own timestamps."""
    return [
        ("Time to detect", incident.time_to_detect),
        ("Time to acknowledge", incident.time_to_acknowledge),
        ("Time to mitigate", incident.time_to_mitigate),
        ("Time to resolve", incident.time_to_resolve),
    ]


def draft_summary(incident: Incident, *, commander) -> str:
    declared = local_time(incident.declared_at)
    lines = [
        f"- Incident #: {incident.reference}",
        f"- Date: {format_moment(declared.date())}",
        f"- Duration: {humanize_duration(incident.duration)}",
        f"- Severity: {incident.severity.level} ({incident.severity.name})",
        f"- Incident Commander: {person_name(commander)}",
        f"- Detected: {format_moment_utc(incident.detected_at)}, {incident.get_detection_source_display()}",
    ]
    lines += [f"- {label}: {humanize_duration(value)}" for label, value in response_times(incident)]
    text = "\n".join(lines)
    if incident.summary.strip():
        text += "\n\n" + incident.summary.strip()
    return text


def draft_impact(incident: Incident, services: list) -> str:
    names = ", ".join(service.name for service in services) or "none recorded"
    text = f"- Services Affected: {names}"
    if incident.impact.strip():
        text += "\n\n" + incident.impact.strip()
    return text


def draft_root_cause(five_whys: FiveWhys | None) -> str:
    """The five whys' root cause. The whys themselves are not copied: the report shows the incident's current
    five whys until it is published (see five_whys_snapshot)."""
    if five_whys is None:
        return ""
    return five_whys.root_cause.strip()


def five_whys_snapshot(five_whys: FiveWhys | None) -> dict | None:
    if five_whys is None:
        return None
    return {"problem": five_whys.problem, "whys": list(five_whys.whys), "root_cause": five_whys.root_cause}


def _users_affected(incident: Incident) -> str:
    value = incident.users_affected_percent
    if value is None:
        return ""
    return f"{value.normalize():f}%"


# --- draft --------------------------------------------------------------------------------------------------


def ensure_draft_for(*, incident: Incident, by) -> PostMortem:
    """Called by incidents.services.status.change_status inside its transaction (the incident row is locked) when an
    incident becomes Resolved: create the post-mortem draft, due 48 hours after resolution, with its content
    drafted from the incident. Re-resolving a re-opened incident keeps the existing post-mortem."""
    existing = PostMortem.objects.filter(incident=incident).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        return _create_draft(incident, by=by)


def timeline_item(postmortem, entry_id, occurred_at, body, body_html, is_key_event) -> PostMortemTimelineItem:
    text = plain_line(body) or "(empty entry)"
    # A one-paragraph entry (most of them) already has its sanitised HTML: reuse it rather than render again.
    html = body_html if text == (body or "").strip() and body_html else render_markdown(text)
    return PostMortemTimelineItem(
        postmortem=postmortem,
        entry_id=entry_id,
        occurred_at=occurred_at,
        text=text,
        text_html=html,
        is_included=is_key_event,
    )


def _create_draft(incident: Incident, *, by) -> PostMortem:
    resolved_at = incident.resolved_at or timezone.now()
    commander = current_holder(incident, Role.INCIDENT_COMMANDER)
    technical_lead = current_holder(incident, Role.TECHNICAL_LEAD)
    services = list(incident.services.all())
    postmortem = PostMortem.objects.create(
        incident=incident,
        title=f"Post-mortem: {incident.title}"[:200],
        owner=commander or by,
        due_at=resolved_at + MEETING_WITHIN,
        summary=draft_summary(incident, commander=commander),
        impact=draft_impact(incident, services),
        users_affected=_users_affected(incident),
        root_cause=draft_root_cause(FiveWhys.objects.filter(incident=incident).first()),
    )
    # The guide's attendees: Incident Commander, Technical Lead, all responders (stakeholders are added later).
    attendee_ids = set(IncidentResponder.objects.filter(incident=incident).values_list("user_id", flat=True))
    attendee_ids |= {user.pk for user in (commander, technical_lead) if user is not None}
    postmortem.attendees.set(attendee_ids)
    # Key events become the timeline's lines; every other entry stays one tick away on the timeline editor,
    # so drafting costs the same for an incident with 20 entries or 20,000.
    key_events = TimelineEntry.objects.filter(incident=incident, is_key_event=True).order_by("occurred_at", "id")
    PostMortemTimelineItem.objects.bulk_create(
        timeline_item(postmortem, *row)
        for row in key_events.values_list("id", "occurred_at", "body", "body_html", "is_key_event")
    )
    timeline.record(postmortem_timeline.postmortem_drafted(incident, postmortem=postmortem, by=by))
    return postmortem

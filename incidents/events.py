"""One small function per kind of timeline entry, so every entry is written the same way.

Each is called inside the service's transaction, so the entry commits (or rolls back) with the change.
"""

from datetime import UTC

from django.utils import timezone

from .markdown import render_markdown
from .models import DetectionSource, EntryKind, TimelineEntry


def record(incident, *, kind, body, by=None, occurred_at=None, is_key_event=False) -> TimelineEntry:
    return TimelineEntry.objects.create(
        incident=incident,
        kind=kind,
        body=body,
        body_html=render_markdown(body),
        author=by,
        occurred_at=occurred_at or timezone.now(),
        is_key_event=is_key_event,
    )


def _name(user) -> str:
    if user is None:
        return "the portal"
    return user.get_full_name() or user.get_username()


def incident_declared(incident, *, by):
    return record(
        incident,
        kind=EntryKind.SYSTEM,
        body=f"Incident declared as **{incident.severity}** by {_name(by)}.",
        by=by,
        occurred_at=incident.declared_at,
        is_key_event=True,
    )


def status_changed(incident, *, old, new, by, note=""):
    body = f"Status changed from {old.label} to **{new.label}**."
    if note:
        body += f"\n\n{note}"
    return record(incident, kind=EntryKind.STATUS, body=body, by=by, is_key_event=True)


def severity_changed(incident, *, old, new, by, reason):
    return record(
        incident,
        kind=EntryKind.SEVERITY,
        body=f"Severity changed from {old.level} to **{new.level}** ({new.name}). Reason: {reason}",
        by=by,
        is_key_event=True,
    )


def role_assigned(incident, *, role, holder, previous, by):
    body = f"{_name(holder)} is now **{role.label}**"
    body += f" (was {_name(previous)})." if previous else "."
    return record(incident, kind=EntryKind.ROLE, body=body, by=by)


def role_relieved(incident, *, role, holder, by):
    return record(incident, kind=EntryKind.ROLE, body=f"{_name(holder)} stepped down as {role.label}.", by=by)


def checklist_ticked(incident, *, item, checked, by):
    verb = "Checked" if checked else "Unchecked"
    phase = item.get_phase_display()
    return record(incident, kind=EntryKind.CHECKLIST, body=f"{verb} ({phase}): {item.text}", by=by)


def runbook_attached(incident, *, runbook, by):
    return record(incident, kind=EntryKind.ACTION, body=f"Runbook attached: **{runbook.title}**.", by=by)


def five_whys_recorded(incident, *, five_whys, by):
    lines = [f"Five whys updated. Problem: {five_whys.problem}"]
    lines += [f"{'  ' * i}- Why? {why}" for i, why in enumerate(five_whys.whys)]
    if five_whys.root_cause:
        lines.append(f"\n**Root cause:** {five_whys.root_cause}")
    return record(
        incident, kind=EntryKind.ACTION, body="\n".join(lines), by=by, is_key_event=bool(five_whys.root_cause)
    )


def update_posted(incident, *, update, by):
    label = update.get_kind_display()
    body = f"{label} posted: **{update.get_status_display()}**"
    if update.title:
        body += f" - {update.title}"
    if update.kind == "external" and update.is_published:
        body += " (published to the status page)"
    return record(incident, kind=EntryKind.UPDATE, body=body, by=by)


def acknowledged(incident, *, by):
    return record(incident, kind=EntryKind.ACTION, body=f"Acknowledged by {_name(by)}.", by=by, is_key_event=True)


def responder_added(incident, *, user, by):
    return record(incident, kind=EntryKind.SYSTEM, body=f"{_name(user)} joined the response.", by=by)


def closure_overridden(incident, *, reason, by):
    return record(
        incident,
        kind=EntryKind.SYSTEM,
        body=f"Closed with the closure checklist incomplete, by manager override. Reason: {reason}",
        by=by,
        is_key_event=True,
    )


_DETAIL_LABELS = {
    "title": "title",
    "summary": "summary",
    "impact": "impact",
    "services": "affected services",
    "is_restricted": "restriction",
    "detected_at": "detection time",
    "detection_source": "detection source",
    "users_affected_percent": "share of users affected",
}


def _detail_phrase(change, incident) -> str:
    field, old, new = change.field, change.old, change.new
    if field == "title":
        return f"title from “{old}” to “{new}”"
    if field in ("summary", "impact"):
        return f"{_DETAIL_LABELS[field]} edited" if new else f"{_DETAIL_LABELS[field]} cleared"
    if field == "services":
        old_ids = {s.pk for s in old}
        added = [s.name for s in new if s.pk not in old_ids]
        new_ids = {s.pk for s in new}
        removed = [s.name for s in old if s.pk not in new_ids]
        parts = []
        if added:
            parts.append("added " + ", ".join(added))
        if removed:
            parts.append("removed " + ", ".join(removed))
        return "affected services: " + "; ".join(parts)
    if field == "is_restricted":
        return "now **restricted** (security incident)" if new else "restriction lifted"
    if field == "detected_at":
        return f"detection time from {old.astimezone(UTC):%Y-%m-%d %H:%M} to {new.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if field == "detection_source":
        labels = dict(DetectionSource.choices)
        return f"detection source from {labels.get(old, old)} to {labels.get(new, new)}"
    if field == "users_affected_percent":
        return f"share of users affected from {_percent(old)} to {_percent(new)}"
    return f"{_DETAIL_LABELS.get(field, field)} changed"


def _percent(value) -> str:
    return "unknown" if value is None else f"{value.normalize():f}%"


def details_changed(incident, *, changes, by):
    """One entry for one edit of the incident's details, naming each field that changed."""
    phrases = [_detail_phrase(change, incident) for change in changes]
    return record(incident, kind=EntryKind.SYSTEM, body="Details changed: " + "; ".join(phrases) + ".", by=by)

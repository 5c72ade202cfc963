"""One small function per kind of timeline entry, so every entry is written the same way.

Each is called inside the service's transaction, so the entry commits (or rolls back) with the change.
"""

from django.utils import timezone

from . import live
from .markdown import render_markdown
from .models import EntryKind, TimelineEntry


def record(incident, *, kind, body, by=None, occurred_at=None, is_key_event=False) -> TimelineEntry:
    # Every change that writes a timeline entry is pushed to the pages showing the incident, after the commit.
    live.incident_changed(incident)
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

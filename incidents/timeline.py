"""Every timeline entry is made here: one builder per event type, so every entry of a type reads the same and carries
the same `data` (its parameters: ids, from/to, reasons), whoever writes it.

Builders return an UNSAVED `TimelineEntry`. Services save it with `record(entry)` (one row, inside their
transaction) or `record_all(entries)` (one bulk insert, for the paging tick), and both publish
`lifecycle.TimelineRecorded` for every row written, so a mirror (the incident's chat channel) can follow:

    timeline.record(timeline.status_changed(incident, old=old, new=new, by=by, note=note))

`data` holds JSON values only (ids, strings, ISO times); the rendered `body` is what people read, `event_type` and
`data` are what code reads. Never parse `body`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.utils import timezone
from django.utils.html import escape

from . import lifecycle
from .markdown import render_markdown
from .models import KIND_OF_EVENT, DetectionSource, EventType, TimelineEntry
from .profiles.zones import format_moment, format_moment_utc


def build(
    incident,
    event_type: EventType,
    body: str,
    *,
    data: dict | None = None,
    by=None,
    occurred_at: datetime | None = None,
    is_key_event: bool = False,
    plain: bool = False,
) -> TimelineEntry:
    """The one constructor every builder goes through. `plain=True` is for lines without Markdown written by the
    thousand (escalation ticks): their HTML is the escaped paragraph Markdown would make of them, at a hundredth of
    the cost (names with * or _ stay literal)."""
    return TimelineEntry(
        incident=incident,
        event_type=event_type,
        kind=KIND_OF_EVENT[event_type],
        data=data or {},
        body=body,
        body_html=f"<p>{escape(body)}</p>" if plain else render_markdown(body),
        author=by,
        occurred_at=occurred_at or timezone.now(),
        is_key_event=is_key_event,
    )


def record(entry: TimelineEntry) -> TimelineEntry:
    """Save one built entry (call inside the service's transaction) and publish TimelineRecorded."""
    entry.save()
    _published(entry)
    return entry


def record_all(entries: Sequence[TimelineEntry], *, incidents_locked: bool = False) -> list[TimelineEntry]:
    """Save built entries in one INSERT (bulk_create: no per-row signals, so no audit rows; the caller writes
    those) and publish TimelineRecorded for each. `incidents_locked`: the caller holds the entries' incident rows
    (locked, loaded on the entries), so the events carry the incidents' number and restriction and subscribers
    need not read them again (the paging tick: one query per entry saved)."""
    saved = TimelineEntry.objects.bulk_create(entries)
    for entry in saved:
        _published(entry, with_incident=incidents_locked)
    return saved


def _published(entry: TimelineEntry, *, with_incident: bool = False) -> None:
    facts = {}
    if with_incident and TimelineEntry.incident.is_cached(entry):
        facts = {"number": entry.incident.number, "restricted": entry.incident.is_restricted}
    lifecycle.publish(
        lifecycle.TimelineRecorded(
            incident_id=entry.incident_id, by=entry.author, entry_id=entry.pk, event_type=entry.event_type, **facts
        )
    )


def _name(user) -> str:
    if user is None:
        return "the portal"
    return user.get_full_name() or user.get_username()


def _id(obj) -> int | None:
    return obj.pk if obj is not None else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _utc_time(moment: datetime) -> str:
    """A moment in an entry's text: the portal's one format in UTC (entries are read by many); the incident page
    shows it in each reader's zone (incidents.profiles.zones.localise_moments)."""
    return format_moment_utc(moment)


# --- incidents ---------------------------------------------------------------------------------------------------


def declared(incident, *, by) -> TimelineEntry:
    return build(
        incident,
        EventType.DECLARED,
        f"Incident declared as **{incident.severity}** by {_name(by)}.",
        data={"severity": incident.severity.level},
        by=by,
        occurred_at=incident.declared_at,
        is_key_event=True,
    )


def status_changed(incident, *, old, new, by, note: str = "") -> TimelineEntry:
    body = f"Status changed from {old.label} to **{new.label}**."
    if note:
        body += f"\n\n{note}"
    data = {"from": str(old), "to": str(new), "note": note}
    return build(incident, EventType.STATUS_CHANGED, body, data=data, by=by, is_key_event=True)


def closure_overridden(incident, *, reason: str, by) -> TimelineEntry:
    return build(
        incident,
        EventType.CLOSURE_OVERRIDDEN,
        f"Closed with the closure checklist incomplete, by manager override. Reason: {reason}",
        data={"reason": reason},
        by=by,
        is_key_event=True,
    )


def severity_changed(incident, *, old, new, by, reason: str) -> TimelineEntry:
    return build(
        incident,
        EventType.SEVERITY_CHANGED,
        f"Severity changed from {old.level} to **{new.level}** ({new.name}). Reason: {reason}",
        data={"from": old.level, "to": new.level, "reason": reason},
        by=by,
        is_key_event=True,
    )


def role_assigned(incident, *, role, holder, previous, by) -> TimelineEntry:
    body = f"{_name(holder)} is now **{role.label}**"
    body += f" (was {_name(previous)})." if previous else "."
    data = {"role": str(role), "holder_id": holder.pk, "previous_holder_id": _id(previous)}
    return build(incident, EventType.ROLE_ASSIGNED, body, data=data, by=by)


def role_relieved(incident, *, role, holder, by) -> TimelineEntry:
    return build(
        incident,
        EventType.ROLE_RELIEVED,
        f"{_name(holder)} stepped down as {role.label}.",
        data={"role": str(role), "holder_id": holder.pk},
        by=by,
    )


def responder_added(incident, *, user, by) -> TimelineEntry:
    return build(
        incident, EventType.RESPONDER_ADDED, f"{_name(user)} joined the response.", data={"user_id": user.pk}, by=by
    )


DETAIL_LABELS = {
    "title": "title",
    "summary": "summary",
    "impact": "impact",
    "services": "affected services",
    "is_restricted": "restriction",
    "detected_at": "detection time",
    "detection_source": "detection source",
    "users_affected_percent": "share of users affected",
}


def _detail_phrase(change) -> str:
    field, old, new = change.field, change.old, change.new
    if field == "title":
        return f"title from “{old}” to “{new}”"
    if field in ("summary", "impact"):
        return f"{DETAIL_LABELS[field]} edited" if new else f"{DETAIL_LABELS[field]} cleared"
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
        return f"detection time from {_utc_time(old)} to {_utc_time(new)}"
    if field == "detection_source":
        labels = dict(DetectionSource.choices)
        return f"detection source from {labels.get(old, old)} to {labels.get(new, new)}"
    if field == "users_affected_percent":
        return f"share of users affected from {_percent(old)} to {_percent(new)}"
    return f"{DETAIL_LABELS.get(field, field)} changed"


def _percent(value) -> str:
    return "unknown" if value is None else f"{value.normalize():f}%"


def _detail_value(field: str, value):
    if field == "services":
        return sorted(service.pk for service in value)
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)  # Decimal


def details_changed(incident, *, changes, by) -> TimelineEntry:
    """One entry for one edit of the incident's details, naming each field that changed. Summary and impact are
    long Markdown: data says that they changed, not their text."""
    phrases = [_detail_phrase(change) for change in changes]
    data = {
        "changes": [
            {"field": change.field}
            if change.field in ("summary", "impact")
            else {
                "field": change.field,
                "from": _detail_value(change.field, change.old),
                "to": _detail_value(change.field, change.new),
            }
            for change in changes
        ]
    }
    return build(incident, EventType.DETAILS_CHANGED, "Details changed: " + "; ".join(phrases) + ".", data=data, by=by)


def note(incident, *, body: str, by, occurred_at: datetime | None = None) -> TimelineEntry:
    """Free text a responder wrote (Markdown)."""
    return build(incident, EventType.NOTE, body, by=by, occurred_at=occurred_at)


def action_taken(incident, *, body: str, by, occurred_at: datetime | None = None) -> TimelineEntry:
    """An action a responder took, in their words (Markdown)."""
    return build(incident, EventType.ACTION_TAKEN, body, by=by, occurred_at=occurred_at)


def checklist_ticked(incident, *, item, checked: bool, by) -> TimelineEntry:
    verb = "Checked" if checked else "Unchecked"
    return build(
        incident,
        EventType.CHECKLIST_TICKED,
        f"{verb} ({item.get_phase_display()}): {item.text}",
        data={"item_id": item.pk, "phase": item.phase, "checked": checked},
        by=by,
    )


def runbook_attached(incident, *, runbook, by) -> TimelineEntry:
    return build(
        incident,
        EventType.RUNBOOK_ATTACHED,
        f"Runbook attached: **{runbook.title}**.",
        data={"runbook_id": runbook.pk},
        by=by,
    )


def five_whys_recorded(incident, *, five_whys, by) -> TimelineEntry:
    lines = [f"Five whys updated. Problem: {five_whys.problem}"]
    lines += [f"{'  ' * i}- Why? {why}" for i, why in enumerate(five_whys.whys)]
    if five_whys.root_cause:
        lines.append(f"\n**Root cause:** {five_whys.root_cause}")
    return build(
        incident,
        EventType.FIVE_WHYS_RECORDED,
        "\n".join(lines),
        data={"five_whys_id": five_whys.pk, "whys": len(five_whys.whys), "root_cause": five_whys.root_cause},
        by=by,
        is_key_event=bool(five_whys.root_cause),
    )


def update_posted(incident, *, update, by) -> TimelineEntry:
    """An internal update or a status-page update (`update.kind`)."""
    body = f"{update.get_kind_display()} posted: **{update.get_status_display()}**"
    if update.title:
        body += f" - {update.title}"
    external = update.kind == "external"
    if external and update.is_published:
        body += " (published to the status page)"
    return build(
        incident,
        EventType.STATUS_PAGE_UPDATE if external else EventType.INTERNAL_UPDATE,
        body,
        data={"update_id": update.pk, "status": update.status, "published": bool(update.is_published)},
        by=by,
    )


def acknowledged(incident, *, by) -> TimelineEntry:
    return build(incident, EventType.ACKNOWLEDGED, f"Acknowledged by {_name(by)}.", by=by, is_key_event=True)


ALERT_VERBS = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}
ALERT_LIST_LIMIT = 20


def alert_attached(incident, *, integration, alerts: Sequence[dict]) -> TimelineEntry:
    """One entry per incident and request, listing its alerts (a 100-alert webhook is one entry). Each alert is
    a dict with action ("trigger", "acknowledge", "resolve"), severity, summary, link and dedup_key."""
    lines = []
    for alert in alerts[:ALERT_LIST_LIMIT]:
        text = (alert["summary"] or alert["dedup_key"]).replace("\n", " ")[:200]
        link = f" ([source]({alert['link']}))" if alert.get("link") else ""
        lines.append(f"- Alert **{ALERT_VERBS[alert['action']]}** ({alert['severity']}): {text}{link}")
    if len(alerts) > ALERT_LIST_LIMIT:
        lines.append(f"- and {len(alerts) - ALERT_LIST_LIMIT} more")
    header = (
        f"{len(alerts)} alert event(s) from **{integration.name}**:"
        if len(alerts) > 1
        else f"From **{integration.name}**:"
    )
    data = {
        "integration_id": integration.pk,
        "count": len(alerts),
        "alerts": [
            {"dedup_key": alert["dedup_key"], "action": alert["action"], "severity": alert["severity"]}
            for alert in alerts[:ALERT_LIST_LIMIT]
        ],
    }
    return build(incident, EventType.ALERT_ATTACHED, header + "\n\n" + "\n".join(lines), data=data)


def merged_into(incident, *, into, by, reason: str = "") -> TimelineEntry:
    body = f"Closed as a duplicate of **{into.reference}** ({into.title}); its alerts, timeline and pages moved there."
    if reason:
        body += f"\n\n{reason}"
    return build(
        incident,
        EventType.MERGED_INTO,
        body,
        data={"into_id": into.pk, "into": into.reference, "reason": reason},
        by=by,
        is_key_event=True,
    )


def merged_from(incident, *, duplicate, by, moved: dict) -> TimelineEntry:
    counts = ", ".join(f"{count} {what}" for what, count in moved.items() if count)
    return build(
        incident,
        EventType.MERGED_FROM,
        f"**{duplicate.reference}** ({duplicate.title}) merged into this incident as a duplicate"
        + (f": {counts} moved here." if counts else "."),
        data={"duplicate_id": duplicate.pk, "duplicate": duplicate.reference, "moved": moved},
        by=by,
        is_key_event=True,
    )


def related_linked(incident, *, other, by) -> TimelineEntry:
    return build(
        incident,
        EventType.RELATED_LINKED,
        f"Linked as related to **{other.reference}** ({other.title}).",
        data={"other_id": other.pk, "other": other.reference},
        by=by,
    )


def related_unlinked(incident, *, other, by) -> TimelineEntry:
    return build(
        incident,
        EventType.RELATED_UNLINKED,
        f"No longer linked to {other.reference}.",
        data={"other_id": other.pk, "other": other.reference},
        by=by,
    )


def triage_results(incident, *, service, results: Sequence, by=None) -> TimelineEntry:
    """One entry per service: each probe's result (incidents.watch.probes.ProbeResult)."""
    failing = sum(1 for result in results if not result.ok)
    verdict = f"{failing} of {len(results)} failing" if failing else f"all {len(results)} passing"
    lines = [f"- {'✅' if result.ok else '❌'} **{result.name}**: {result.summary}" for result in results]
    return build(
        incident,
        EventType.TRIAGE_RESULTS,
        f"Triage of **{service.name}**: {verdict}.\n\n" + "\n".join(lines),
        data={"service_id": service.pk, "failing": failing, "results": [result.as_dict() for result in results]},
        by=by,
    )


def evidence_exported(incident, *, export, by, username: str) -> TimelineEntry:
    return build(
        incident,
        EventType.EVIDENCE_EXPORTED,
        f"Evidence bundle exported by {username or 'the portal'}; manifest SHA-256 `{export.manifest_sha256}`.",
        data={"export_id": export.pk, "manifest_sha256": export.manifest_sha256},
        by=by,
        occurred_at=export.created_at,
    )


# --- paging and reminders ----------------------------------------------------------------------------------------


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
        "team_id": _id(team),
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
        data={"page_id": page.pk, "level": page.level_number, "via": via, "person_id": _id(person)},
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
    body = f"{_name(by)} paged {target} ({how})" + (f": {message}" if message else ".")
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
        f"(due {_utc_time(page.acknowledge_due_at)}). Escalation continues.",
        data={"page_id": page.pk, "due_at": _iso(page.acknowledge_due_at), "target_minutes": target_minutes},
        is_key_event=True,
    )


def update_overdue(incident, *, due_at: datetime, cadence_minutes: int | None, reminded: list[str]) -> TimelineEntry:
    every = f" ({incident.severity.level}: every {cadence_minutes} min)" if cadence_minutes is not None else ""
    who = ", ".join(reminded) if reminded else "nobody (no Incident Commander or Communications Lead to remind)"
    return build(
        incident,
        EventType.UPDATE_OVERDUE,
        f"Internal update overdue (due {_utc_time(due_at)}{every}). Reminded: {who}.",
        data={"due_at": _iso(due_at), "reminded": reminded},
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


# --- post-mortems ------------------------------------------------------------------------------------------------


def _local(moment: datetime) -> str:
    return _utc_time(moment)


def postmortem_drafted(incident, *, postmortem, by) -> TimelineEntry:
    return build(
        incident,
        EventType.POSTMORTEM_DRAFTED,
        f"Post-mortem drafted; the meeting is due by {_local(postmortem.due_at)}.",
        data={"postmortem_id": postmortem.pk, "due_at": _iso(postmortem.due_at)},
        by=by,
    )


def postmortem_owner_changed(incident, *, postmortem, owner, by) -> TimelineEntry:
    return build(
        incident,
        EventType.POSTMORTEM_OWNER_CHANGED,
        f"Post-mortem owner is now {_name(owner)}.",
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
            "meeting_at": _iso(postmortem.meeting_at),
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

"""Every timeline entry is made here: one builder per event type, so every entry of a type reads the same and carries
the same `data` (its parameters: ids, from/to, reasons), whoever writes it. The incident's own builders are here;
paging's are in `timeline.paging`, post-mortems' in `timeline.postmortems`.

Builders return an UNSAVED `TimelineEntry`. Services save it with `record(entry)` (one row, inside their
transaction) or `record_all(entries)` (one bulk insert, for the paging tick), and both publish
`lifecycle.TimelineRecorded` for every row written, so a mirror (the incident's chat channel) can follow:

    timeline.record(timeline.status_changed(incident, old=old, new=new, by=by, note=note))

`data` holds JSON values only (ids, strings, ISO times); the rendered `body` is what people read, `event_type` and
`data` are what code reads. Never parse `body`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone
from django.utils.html import escape

from .. import lifecycle
from ..markdown import render_markdown
from ..models import KIND_OF_EVENT, DetectionSource, EventType, TimelineEntry
from ..profiles.zones import format_moment_utc


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


def person_name(user) -> str:
    if user is None:
        return "the portal"
    return user.get_full_name() or user.get_username()


def pk_of(obj) -> int | None:
    return obj.pk if obj is not None else None


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def utc_time(moment: datetime) -> str:
    """A moment in an entry's text: the portal's one format in UTC (entries are read by many); the incident page
    shows it in each reader's zone (incidents.profiles.zones.localise_moments)."""
    return format_moment_utc(moment)


# --- incidents ---------------------------------------------------------------------------------------------------


def declared(incident, *, by) -> TimelineEntry:
    return build(
        incident,
        EventType.DECLARED,
        f"Incident declared as **{incident.severity}** by {person_name(by)}.",
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
    body = f"{person_name(holder)} is now **{role.label}**"
    body += f" (was {person_name(previous)})." if previous else "."
    data = {"role": str(role), "holder_id": holder.pk, "previous_holder_id": pk_of(previous)}
    return build(incident, EventType.ROLE_ASSIGNED, body, data=data, by=by)


def role_relieved(incident, *, role, holder, by) -> TimelineEntry:
    return build(
        incident,
        EventType.ROLE_RELIEVED,
        f"{person_name(holder)} stepped down as {role.label}.",
        data={"role": str(role), "holder_id": holder.pk},
        by=by,
    )


def responder_added(incident, *, user, by) -> TimelineEntry:
    return build(
        incident,
        EventType.RESPONDER_ADDED,
        f"{person_name(user)} joined the response.",
        data={"user_id": user.pk},
        by=by,
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
        return f"detection time from {utc_time(old)} to {utc_time(new)}"
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
    return build(incident, EventType.ACKNOWLEDGED, f"Acknowledged by {person_name(by)}.", by=by, is_key_event=True)


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


def change_detected(incident, *, change) -> TimelineEntry:
    """A change (deploy, migration, configuration, feature flag) to one of the incident's services, recorded while
    the incident is open: on the timeline at the time the change happened, next to the alerts."""
    where = f" on **{change.service.name}**" if change.service_id else ""
    source = f" by {change.source}" if change.source else ""
    link = f" ([details]({change.link}))" if change.link else ""
    summary = change.summary.replace("\n", " ")[:300]
    data = {
        "change_id": change.pk,
        "kind": change.kind,
        "service_id": change.service_id,
        "integration_id": change.integration_id,
    }
    return build(
        incident,
        EventType.CHANGE_DETECTED,
        f"Change detected ({change.get_kind_display().lower()}){where}{source}: {summary}{link}",
        data=data,
        occurred_at=change.occurred_at,
    )


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

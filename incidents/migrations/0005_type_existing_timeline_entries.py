"""Type the timeline entries written before entries had an event_type: by their coarse kind and the fixed opening
words every builder wrote (incidents/timeline.py). One UPDATE per pattern, so it costs the same on a large table.
Rows that match nothing keep a generic type: `note` for notes, `action_taken` for actions, `system` otherwise.
Their `data` stays empty: the parameters were only ever in the rendered text."""

from django.db import migrations

# (kind, body starts with, event_type); applied in order, later rules win.
RULES = [
    ("status", "", "status_changed"),
    ("severity", "", "severity_changed"),
    ("role", "", "role_assigned"),
    ("checklist", "", "checklist_ticked"),
    ("update", "", "status_page_update"),
    ("update", "Internal update posted", "internal_update"),
    ("alert", "", "alert_attached"),
    ("action", "", "action_taken"),
    ("action", "Runbook attached:", "runbook_attached"),
    ("action", "Five whys updated.", "five_whys_recorded"),
    ("action", "Acknowledged by ", "acknowledged"),
    ("action", "Action item added:", "action_item_added"),
    ("action", 'Action item "', "action_item_status_changed"),
    ("system", "", "system"),
    ("system", "Incident declared as", "declared"),
    ("system", "Closed with the closure checklist incomplete", "closure_overridden"),
    ("system", "Evidence bundle exported", "evidence_exported"),
    ("system", "Details changed:", "details_changed"),
    ("system", "Nobody was paged:", "paging_unavailable"),
    ("system", "Paging started", "paging_started"),
    ("system", "Paged level ", "escalated"),
    ("system", "Nobody acknowledged after", "hotlines_alerted"),
    ("system", "Paging acknowledged by", "page_acknowledged"),
    ("system", "Paging stopped:", "paging_stopped"),
    ("system", "Could not notify", "notification_failed"),
    ("system", "Acknowledge target missed", "acknowledge_target_missed"),
    ("system", "Internal update overdue", "update_overdue"),
    ("system", "Resolved for 24 hours", "close_reminder"),
    ("system", "Post-mortem drafted", "postmortem_drafted"),
    ("system", "Post-mortem owner is now", "postmortem_owner_changed"),
    ("system", "Post-mortem meeting ", "postmortem_meeting_scheduled"),
    ("system", "Post-mortem moved from", "postmortem_status_changed"),
    ("system", "Post-mortem report re-sent", "postmortem_report_resent"),
]


def type_entries(apps, schema_editor):
    entries = apps.get_model("incidents", "TimelineEntry").objects
    for kind, prefix, event_type in RULES:
        rows = entries.filter(kind=kind)
        if prefix:
            rows = rows.filter(body__startswith=prefix)
        rows.update(event_type=event_type)
    entries.filter(kind="role", body__contains=" stepped down as ").update(event_type="role_relieved")
    entries.filter(kind="system", body__endswith=" joined the response.").update(event_type="responder_added")
    # The first level of the first pass is "paged"; later levels and repeats are escalations.
    entries.filter(kind="system", body__startswith="Paged level 1 (").exclude(
        body__regex=r"^Paged level 1 \(.*\), repeat [0-9]+ of [0-9]+:"
    ).update(event_type="paged")


class Migration(migrations.Migration):
    dependencies = [("incidents", "0004_timeline_event_type")]

    operations = [migrations.RunPython(type_entries, migrations.RunPython.noop, elidable=True)]

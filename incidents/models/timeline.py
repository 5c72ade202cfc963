"""The timeline: one row per event, typed (`event_type`, with its parameters in `data`) and grouped in coarse kinds."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from .incident import Incident


class EntryKind(models.TextChoices):
    NOTE = "note", "Note"
    STATUS = "status", "Status change"
    SEVERITY = "severity", "Severity change"
    ROLE = "role", "Role change"
    CHECKLIST = "checklist", "Checklist"
    UPDATE = "update", "Update"
    ALERT = "alert", "Alert"
    ACTION = "action", "Action"
    SYSTEM = "system", "System"


class EventType(models.TextChoices):
    """What a timeline entry records. Each has one builder in incidents/timeline/, which also fills `data`."""

    # incidents
    DECLARED = "declared", "Declared"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    STATUS_CHANGED = "status_changed", "Status changed"
    SEVERITY_CHANGED = "severity_changed", "Severity changed"
    CLOSURE_OVERRIDDEN = "closure_overridden", "Closed by override"
    ROLE_ASSIGNED = "role_assigned", "Role assigned"
    ROLE_RELIEVED = "role_relieved", "Role relieved"
    RESPONDER_ADDED = "responder_added", "Responder joined"
    DETAILS_CHANGED = "details_changed", "Details changed"
    NOTE = "note", "Note"
    ACTION_TAKEN = "action_taken", "Action taken"
    CHECKLIST_TICKED = "checklist_ticked", "Checklist ticked"
    RUNBOOK_ATTACHED = "runbook_attached", "Runbook attached"
    FIVE_WHYS_RECORDED = "five_whys_recorded", "Five whys recorded"
    INTERNAL_UPDATE = "internal_update", "Internal update"
    STATUS_PAGE_UPDATE = "status_page_update", "Status page update"
    ALERT_ATTACHED = "alert_attached", "Alerts attached"
    CHANGE_DETECTED = "change_detected", "Change detected"
    EVIDENCE_EXPORTED = "evidence_exported", "Evidence exported"
    TRIAGE_RESULTS = "triage_results", "Triage results"
    MERGED_INTO = "merged_into", "Merged into another incident"
    MERGED_FROM = "merged_from", "Duplicate merged in"
    RELATED_LINKED = "related_linked", "Related incident linked"
    RELATED_UNLINKED = "related_unlinked", "Related incident unlinked"
    # paging and reminders
    PAGING_STARTED = "paging_started", "Paging started"
    PAGING_UNAVAILABLE = "paging_unavailable", "Nobody paged"
    PAGED = "paged", "Paged"
    ESCALATED = "escalated", "Escalated"
    HOTLINES_ALERTED = "hotlines_alerted", "Hotlines alerted"
    PAGE_ACKNOWLEDGED = "page_acknowledged", "Page acknowledged"
    PAGING_STOPPED = "paging_stopped", "Paging stopped"
    NOTIFICATION_FAILED = "notification_failed", "Notification failed"
    ACKNOWLEDGE_TARGET_MISSED = "acknowledge_target_missed", "Acknowledge target missed"
    UPDATE_OVERDUE = "update_overdue", "Update overdue"
    CLOSE_REMINDER = "close_reminder", "Time to close"
    # post-mortems
    POSTMORTEM_DRAFTED = "postmortem_drafted", "Post-mortem drafted"
    POSTMORTEM_OWNER_CHANGED = "postmortem_owner_changed", "Post-mortem owner changed"
    POSTMORTEM_MEETING_SCHEDULED = "postmortem_meeting_scheduled", "Post-mortem meeting scheduled"
    POSTMORTEM_STATUS_CHANGED = "postmortem_status_changed", "Post-mortem status changed"
    POSTMORTEM_REPORT_RESENT = "postmortem_report_resent", "Post-mortem report re-sent"
    ACTION_ITEM_ADDED = "action_item_added", "Action item added"
    ACTION_ITEM_STATUS_CHANGED = "action_item_status_changed", "Action item status changed"
    # rows written before entries were typed, whose text matched no known pattern
    SYSTEM = "system", "System"


# The coarse kind each event type shows as (the timeline's colour and its "Show" filter groups).
KIND_OF_EVENT = {
    EventType.DECLARED: EntryKind.SYSTEM,
    EventType.ACKNOWLEDGED: EntryKind.ACTION,
    EventType.STATUS_CHANGED: EntryKind.STATUS,
    EventType.SEVERITY_CHANGED: EntryKind.SEVERITY,
    EventType.CLOSURE_OVERRIDDEN: EntryKind.SYSTEM,
    EventType.ROLE_ASSIGNED: EntryKind.ROLE,
    EventType.ROLE_RELIEVED: EntryKind.ROLE,
    EventType.RESPONDER_ADDED: EntryKind.SYSTEM,
    EventType.DETAILS_CHANGED: EntryKind.SYSTEM,
    EventType.NOTE: EntryKind.NOTE,
    EventType.ACTION_TAKEN: EntryKind.ACTION,
    EventType.CHECKLIST_TICKED: EntryKind.CHECKLIST,
    EventType.RUNBOOK_ATTACHED: EntryKind.ACTION,
    EventType.FIVE_WHYS_RECORDED: EntryKind.ACTION,
    EventType.INTERNAL_UPDATE: EntryKind.UPDATE,
    EventType.STATUS_PAGE_UPDATE: EntryKind.UPDATE,
    EventType.ALERT_ATTACHED: EntryKind.ALERT,
    EventType.CHANGE_DETECTED: EntryKind.ALERT,
    EventType.EVIDENCE_EXPORTED: EntryKind.SYSTEM,
    EventType.TRIAGE_RESULTS: EntryKind.ALERT,
    EventType.MERGED_INTO: EntryKind.STATUS,
    EventType.MERGED_FROM: EntryKind.SYSTEM,
    EventType.RELATED_LINKED: EntryKind.SYSTEM,
    EventType.RELATED_UNLINKED: EntryKind.SYSTEM,
    EventType.PAGING_STARTED: EntryKind.SYSTEM,
    EventType.PAGING_UNAVAILABLE: EntryKind.SYSTEM,
    EventType.PAGED: EntryKind.SYSTEM,
    EventType.ESCALATED: EntryKind.SYSTEM,
    EventType.HOTLINES_ALERTED: EntryKind.SYSTEM,
    EventType.PAGE_ACKNOWLEDGED: EntryKind.SYSTEM,
    EventType.PAGING_STOPPED: EntryKind.SYSTEM,
    EventType.NOTIFICATION_FAILED: EntryKind.SYSTEM,
    EventType.ACKNOWLEDGE_TARGET_MISSED: EntryKind.SYSTEM,
    EventType.UPDATE_OVERDUE: EntryKind.SYSTEM,
    EventType.CLOSE_REMINDER: EntryKind.SYSTEM,
    EventType.POSTMORTEM_DRAFTED: EntryKind.SYSTEM,
    EventType.POSTMORTEM_OWNER_CHANGED: EntryKind.SYSTEM,
    EventType.POSTMORTEM_MEETING_SCHEDULED: EntryKind.SYSTEM,
    EventType.POSTMORTEM_STATUS_CHANGED: EntryKind.SYSTEM,
    EventType.POSTMORTEM_REPORT_RESENT: EntryKind.SYSTEM,
    EventType.ACTION_ITEM_ADDED: EntryKind.ACTION,
    EventType.ACTION_ITEM_STATUS_CHANGED: EntryKind.ACTION,
    EventType.SYSTEM: EntryKind.SYSTEM,
}


def event_types_of_kind(kind: str) -> list[str]:
    return [event_type.value for event_type, of in KIND_OF_EVENT.items() if of == kind]


class TimelineEntry(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    occurred_at = models.DateTimeField(help_text="When it happened; the scribe may back-date.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=12, choices=EntryKind.choices, default=EntryKind.NOTE)
    event_type = models.CharField(max_length=32, choices=EventType.choices, default=EventType.NOTE)
    data = models.JSONField(default=dict, blank=True, help_text="The event's parameters: ids, from/to, reasons.")
    body = models.TextField(help_text="Markdown.")
    body_html = models.TextField(editable=False, help_text="Sanitised HTML rendered from body when written.")
    is_key_event = models.BooleanField(default=False, help_text="Pre-selected for the post-mortem timeline.")

    class Meta:
        ordering = ["occurred_at", "id"]
        verbose_name_plural = "timeline entries"
        indexes = [
            # Cursor polling (?after=<id>) and "latest N" both walk this index.
            models.Index(fields=["incident", "id"], name="timeline_cursor_idx"),
            models.Index(fields=["incident", "occurred_at"], name="timeline_occurred_idx"),
            models.Index(fields=["incident", "event_type", "id"], name="timeline_event_type_idx"),
        ]

    def __str__(self):
        return f"{self.incident_id} {self.occurred_at:%Y-%m-%d %H:%M} {self.kind}"

    @property
    def is_backdated(self) -> bool:
        return self.created_at - self.occurred_at > timedelta(minutes=1)

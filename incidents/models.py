"""The incidents domain: the guide's severity table, the service catalogue, incidents with their lifecycle,
the four response roles, the timeline, checklists, runbooks, five whys and status updates.

State changes go through incidents.services; these models hold data, constraints and small computed values.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from . import access
from .business_hours import end_of_next_business_day


class SeverityPolicy(models.Model):
    """One row of the guide's "Severity Levels" table (P0-P3), seeded by a migration and editable in admin."""

    level = models.CharField(max_length=2, unique=True, help_text="P0, P1, P2 or P3.")
    rank = models.PositiveSmallIntegerField(unique=True, help_text="0 is the most severe.")
    name = models.CharField(max_length=40, help_text="Critical, High, Medium, Low.")
    description = models.CharField(max_length=200)
    impact = models.CharField(max_length=200)
    response_target = models.DurationField(
        null=True, blank=True, help_text="Time to respond. Empty when the target is the next business day."
    )
    response_next_business_day = models.BooleanField(
        default=False, help_text="Respond by the end of the next business day (business hours are settings)."
    )
    escalation_delay = models.DurationField(
        null=True, blank=True, help_text="Escalate after this long without resolution; 0 = immediately, empty = never."
    )
    update_cadence = models.DurationField(
        null=True, blank=True, help_text="Internal updates are due this often; empty = as needed."
    )
    pages_out_of_hours = models.BooleanField(default=True, help_text="Page people outside business hours.")
    examples = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["rank"]
        verbose_name_plural = "severity policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(response_target__isnull=False) | Q(response_next_business_day=True),
                name="severity_has_response_target",
            )
        ]

    def __str__(self):
        return f"{self.level} - {self.name}"

    @property
    def label(self) -> str:
        return str(self)

    @property
    def css_class(self) -> str:
        return f"sev-{self.level.lower()}"

    @property
    def escalates(self) -> bool:
        return self.escalation_delay is not None

    def response_due_at(self, start: datetime) -> datetime:
        if self.response_target is not None:
            return start + self.response_target
        return end_of_next_business_day(start)

    def next_update_due_at(self, start: datetime) -> datetime | None:
        return start + self.update_cadence if self.update_cadence else None


class Service(models.Model):
    """An affected system in the service catalogue; public ones appear on the status page."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    health_check_url = models.URLField(blank=True)
    is_public = models.BooleanField(default=True, help_text="Shown on the public status page.")
    owning_team = models.ForeignKey(
        "oncall.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="services"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Status(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


STATUS_MEANINGS = {
    Status.INVESTIGATING: "Impact is confirmed; the cause is not yet known.",
    Status.IDENTIFIED: "The cause is known and a fix or mitigation is being worked on.",
    Status.MONITORING: "A fix or mitigation is in place; watching that it holds.",
    Status.RESOLVED: "Service is restored; the closure checklist and post-mortem follow.",
    Status.CLOSED: "Closure checklist complete; nothing more to do on this incident.",
}

# Re-opening is allowed from Monitoring and Resolved (back to Investigating); Closed is final.
ALLOWED_TRANSITIONS = {
    Status.INVESTIGATING: {Status.IDENTIFIED, Status.MONITORING, Status.RESOLVED},
    Status.IDENTIFIED: {Status.INVESTIGATING, Status.MONITORING, Status.RESOLVED},
    Status.MONITORING: {Status.INVESTIGATING, Status.IDENTIFIED, Status.RESOLVED},
    Status.RESOLVED: {Status.INVESTIGATING, Status.CLOSED},
    Status.CLOSED: set(),
}
ACTIVE_STATUSES = (Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING)


class DetectionSource(models.TextChoices):
    MONITORING_ALERT = "monitoring_alert", "Monitoring alert (automated)"
    HEALTH_CHECK = "health_check", "Health check failure (automated)"
    ERROR_RATE = "error_rate", "Error rate spike (automated)"
    PERFORMANCE = "performance", "Performance degradation (automated)"
    USER_REPORT = "user_report", "User report (manual)"
    SUPPORT_TICKET = "support_ticket", "Support ticket escalation (manual)"
    TEAM_MEMBER = "team_member", "Team member observation (manual)"

    @classmethod
    def automated(cls):
        return {cls.MONITORING_ALERT, cls.HEALTH_CHECK, cls.ERROR_RATE, cls.PERFORMANCE}


class ReferenceCounter(models.Model):
    """The INC-<n> counter on SQLite, locked while a number is taken. On PostgreSQL numbers come from a sequence
    instead (incidents/numbering.py: unique and increasing, not gap-free) and this row is only written when that
    migration is reversed."""

    name = models.CharField(max_length=40, unique=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}={self.value}"


class IncidentQuerySet(models.QuerySet):
    def visible_to(self, user) -> IncidentQuerySet:
        """Every read of incidents goes through here. Restricted incidents are visible only to their
        responders, the security team and admins (superusers and the admin group, as the issue's security
        model says); everything else to every signed-in user."""
        if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser or user_sees_restricted(user):
            return self
        responder = IncidentResponder.objects.filter(incident=OuterRef("pk"), user=user)
        return self.filter(Q(is_restricted=False) | Exists(responder))

    def active(self) -> IncidentQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def open(self) -> IncidentQuerySet:
        return self.exclude(status=Status.CLOSED)


def user_sees_restricted(user) -> bool:
    """The security team and the admin group see every restricted incident. Uses access.group_names, which
    caches the user's groups for the request, so the permission checks of the same page share its query."""
    return bool({access.SECURITY, access.ADMIN} & access.group_names(user))


class Incident(models.Model):
    number = models.PositiveIntegerField(unique=True, editable=False)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    severity = models.ForeignKey(SeverityPolicy, on_delete=models.PROTECT, related_name="incidents")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INVESTIGATING)
    detection_source = models.CharField(
        max_length=24, choices=DetectionSource.choices, default=DetectionSource.TEAM_MEMBER
    )
    services = models.ManyToManyField(Service, blank=True, related_name="incidents")
    impact = models.TextField(blank=True, help_text="Who is affected and how.")
    users_affected_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    is_restricted = models.BooleanField(
        default=False, help_text="Security incident: visible only to its responders and the security team."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    detected_at = models.DateTimeField()
    declared_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    identified_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Merging: a duplicate points at the incident it was merged into (and redirects there); related incidents are
    # linked both ways and shown on both pages and in the post-mortem.
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates", editable=False
    )
    related_incidents = models.ManyToManyField("self", blank=True, symmetrical=True)

    # Deadlines are columns; the timer tick wakes up on them.
    response_due_at = models.DateTimeField(null=True, blank=True)
    next_update_due_at = models.DateTimeField(null=True, blank=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-declared_at", "-number"]
        indexes = [
            models.Index(fields=["status", "severity", "-declared_at"], name="incident_status_sev_idx"),
            models.Index(fields=["-declared_at"], name="incident_declared_idx"),
            models.Index(fields=["next_update_due_at"], name="incident_update_due_idx"),
            models.Index(fields=["resolved_at"], name="incident_resolved_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(users_affected_percent__isnull=True)
                | (Q(users_affected_percent__gte=0) & Q(users_affected_percent__lte=100)),
                name="incident_users_affected_percent_range",
            )
        ]

    def __str__(self):
        return f"{self.reference}: {self.title}"

    def is_visible_to(self, user) -> bool:
        """One incident through the one visibility rule (visible_to): for checks at send time, e.g. emails."""
        return Incident.objects.visible_to(user).filter(pk=self.pk).exists()

    @property
    def reference(self) -> str:
        return f"INC-{self.number}"

    def get_absolute_url(self):
        return reverse("incidents:detail", kwargs={"reference": self.reference})

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def status_meaning(self) -> str:
        return STATUS_MEANINGS[Status(self.status)]

    def allowed_transitions(self) -> list[Status]:
        order = list(Status)
        return sorted(ALLOWED_TRANSITIONS[Status(self.status)], key=order.index)

    # Durations, for admin, metrics and post-mortems.
    def _since_detected(self, moment):
        return moment - self.detected_at if moment else None

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        return self.acknowledged_at - self.declared_at if self.acknowledged_at else None

    @property
    def time_to_detect(self) -> timedelta | None:
        return self.declared_at - self.detected_at

    @property
    def time_to_mitigate(self) -> timedelta | None:
        return self._since_detected(self.mitigated_at)

    @property
    def time_to_resolve(self) -> timedelta | None:
        return self._since_detected(self.resolved_at)

    @property
    def duration(self) -> timedelta:
        return (self.resolved_at or timezone.now()) - self.detected_at

    @property
    def response_target_breached(self) -> bool:
        if self.acknowledged_at:
            return bool(self.response_due_at and self.acknowledged_at > self.response_due_at)
        return bool(self.response_due_at and timezone.now() > self.response_due_at)

    @property
    def update_overdue(self) -> bool:
        return bool(self.is_active and self.next_update_due_at and timezone.now() > self.next_update_due_at)


class IncidentResponder(models.Model):
    """Who works on an incident. Role holders are added automatically; restricted incidents are visible to these."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="responder_links")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="incident_links")
    added_at = models.DateTimeField(default=timezone.now)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "user"], name="unique_incident_responder")]
        indexes = [models.Index(fields=["user", "incident"], name="responder_user_idx")]

    def __str__(self):
        return f"{self.user} on {self.incident.reference}"


class Role(models.TextChoices):
    INCIDENT_COMMANDER = "incident_commander", "Incident Commander"
    TECHNICAL_LEAD = "technical_lead", "Technical Lead"
    COMMUNICATIONS_LEAD = "communications_lead", "Communications Lead"
    SCRIBE = "scribe", "Scribe"


ROLE_RESPONSIBILITIES = {
    Role.INCIDENT_COMMANDER: [
        "Declare incident severity",
        "Coordinate response efforts",
        "Make critical decisions",
        "Communicate with stakeholders",
        "Lead post-mortem",
    ],
    Role.TECHNICAL_LEAD: [
        "Investigate root cause",
        "Implement fixes",
        "Coordinate with engineers",
        "Provide technical updates to IC",
    ],
    Role.COMMUNICATIONS_LEAD: [
        "Update status page",
        "Communicate with users",
        "Post updates to Slack/email",
        "Draft incident reports",
    ],
    Role.SCRIBE: [
        "Record timeline of events",
        "Document actions taken",
        "Track decision-making",
        "Maintain incident log",
    ],
}


class RoleAssignment(models.Model):
    """One holder per role at a time (relieved_at is null); earlier holders stay as history."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=24, choices=Role.choices)
    holder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incident_roles")
    assigned_at = models.DateTimeField(default=timezone.now)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    relieved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["incident", "role", "-assigned_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "role"], condition=Q(relieved_at__isnull=True), name="one_current_holder_per_role"
            )
        ]

    def __str__(self):
        return f"{self.get_role_display()}: {self.holder}"

    @property
    def is_current(self) -> bool:
        return self.relieved_at is None


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
    """What a timeline entry records. Each has one builder in incidents/timeline.py, which also fills `data`."""

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


class ChecklistPhase(models.TextChoices):
    TRIAGE = "triage", "Triage"
    DETECTION = "detection", "Detection"
    RESPONSE = "response", "Response"
    RESOLUTION = "resolution", "Resolution"
    RECOVERY = "recovery", "Recovery"
    CLOSURE = "closure", "Closure"
    RUNBOOK = "runbook", "Runbook"


class ChecklistTemplateItem(models.Model):
    """The guide's checklists as data; copied into each incident when it is declared."""

    phase = models.CharField(max_length=12, choices=ChecklistPhase.choices)
    position = models.PositiveSmallIntegerField()
    text = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["phase", "position"]
        constraints = [models.UniqueConstraint(fields=["phase", "position"], name="unique_template_position")]

    def __str__(self):
        return f"{self.get_phase_display()} {self.position}: {self.text}"


class ChecklistItem(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="checklist_items")
    phase = models.CharField(max_length=12, choices=ChecklistPhase.choices)
    position = models.PositiveSmallIntegerField()
    text = models.CharField(max_length=300)
    runbook = models.ForeignKey("Runbook", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    command = models.TextField(blank=True, help_text="For runbook actions: the commands to run.")
    checked_at = models.DateTimeField(null=True, blank=True)
    checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident", "phase", "runbook", "position"]
        indexes = [models.Index(fields=["incident", "phase"], name="checklist_incident_phase_idx")]

    def __str__(self):
        return self.text

    @property
    def is_checked(self) -> bool:
        return self.checked_at is not None


class Runbook(models.Model):
    """A common incident scenario from the guide: symptoms and ordered immediate actions."""

    title = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    summary = models.TextField(blank=True)
    symptoms = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True, help_text="Markdown: warnings, what NOT to do.")
    suggested_severity = models.ForeignKey(SeverityPolicy, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("incidents:runbook", kwargs={"slug": self.slug})


class RunbookStep(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    text = models.CharField(max_length=200)
    command = models.TextField(blank=True)

    class Meta:
        ordering = ["runbook", "position"]
        constraints = [models.UniqueConstraint(fields=["runbook", "position"], name="unique_runbook_step")]

    def __str__(self):
        return f"{self.position}. {self.text}"


class IncidentRunbook(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="runbook_links")
    runbook = models.ForeignKey(Runbook, on_delete=models.PROTECT, related_name="incident_links")
    attached_at = models.DateTimeField(default=timezone.now)
    attached_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "runbook"], name="unique_incident_runbook")]

    def __str__(self):
        return f"{self.runbook} on {self.incident_id}"


class FiveWhys(models.Model):
    """The guide's Five Whys analysis: a problem, ordered answers to "why?", and the root cause."""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="five_whys")
    problem = models.CharField(max_length=300)
    whys = models.JSONField(default=list, blank=True, help_text="Ordered answers to 'Why?'.")
    root_cause = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "five whys analysis"
        verbose_name_plural = "five whys analyses"

    def __str__(self):
        return f"Five whys for {self.incident_id}"


class UpdateKind(models.TextChoices):
    INTERNAL = "internal", "Internal update"
    EXTERNAL = "external", "Status page update"


class UpdateStatus(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    FIXING = "fixing", "Fixing"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"


# The guide's internal template uses Investigating/Fixing/Monitoring/Resolved;
# its status-page template uses Investigating/Identified/Monitoring/Resolved.
UPDATE_STATUSES_BY_KIND = {
    UpdateKind.INTERNAL: [
        UpdateStatus.INVESTIGATING,
        UpdateStatus.FIXING,
        UpdateStatus.MONITORING,
        UpdateStatus.RESOLVED,
    ],
    UpdateKind.EXTERNAL: [
        UpdateStatus.INVESTIGATING,
        UpdateStatus.IDENTIFIED,
        UpdateStatus.MONITORING,
        UpdateStatus.RESOLVED,
    ],
}


class StatusUpdate(models.Model):
    """An internal update (the guide's internal template) or a status-page update (its external template)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="status_updates")
    kind = models.CharField(max_length=8, choices=UpdateKind.choices)
    status = models.CharField(max_length=16, choices=UpdateStatus.choices)
    title = models.CharField(max_length=200, blank=True, help_text="External: brief issue description.")
    # Internal template
    what_we_know = models.TextField(blank=True)
    what_we_are_doing = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    eta = models.CharField(max_length=100, blank=True)
    # External template
    description = models.TextField(blank=True)
    workaround = models.TextField(blank=True)
    affected_services = models.ManyToManyField(Service, blank=True, related_name="status_updates")
    next_update_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(default=timezone.now)
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_published = models.BooleanField(
        default=False, help_text="External updates appear on the public status page only when published."
    )

    class Meta:
        ordering = ["-posted_at", "-id"]
        indexes = [
            models.Index(fields=["incident", "kind", "-posted_at"], name="update_incident_kind_idx"),
            models.Index(fields=["kind", "is_published", "-posted_at"], name="update_published_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.get_status_display()} ({self.incident_id})"

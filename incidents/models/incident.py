"""Incidents with their lifecycle (statuses, allowed transitions), responders and the four response roles."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from .. import access
from .catalogue import Service, SeverityPolicy


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

"""Internal and status-page updates, in the guide's templates."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .catalogue import Service
from .incident import Incident


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

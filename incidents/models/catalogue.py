"""The guide's severity table and the service catalogue."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q

from ..business_hours import end_of_next_business_day


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

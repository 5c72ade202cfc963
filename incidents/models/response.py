"""What responders work through: checklists (the guide's and runbooks' steps), runbooks and the five whys."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .catalogue import SeverityPolicy
from .incident import Incident


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

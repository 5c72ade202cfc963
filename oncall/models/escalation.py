"""Escalation: a policy's ordered levels and each level's targets."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from .directory import Hotline, Person, Slot, Team


class EscalationPolicy(models.Model):
    """Who is paged, in which order, when an incident is not acknowledged (the guide's Escalation Path)."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="escalation_policies",
        help_text="The team whose incidents use this policy; empty for the default policy.",
    )
    is_default = models.BooleanField(default=False, help_text="Used for teams without a policy of their own.")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_policy"),
        ]

    def __str__(self):
        return self.name


class EscalationLevel(models.Model):
    """One step of a policy, fired `delay` after paging started (before per-severity adjustment)."""

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="levels")
    position = models.PositiveSmallIntegerField(default=0, help_text="0 is paged first.")
    name = models.CharField(max_length=120, help_text="e.g. On-call engineer, Team lead.")
    delay = models.DurationField(default=timedelta(0), help_text="From the start of paging, e.g. 0:15:00.")

    class Meta:
        ordering = ["policy", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="escalation_level_position_unique"),
            models.CheckConstraint(condition=Q(delay__gte=timedelta(0)), name="escalation_level_delay_not_negative"),
        ]

    def __str__(self):
        return f"{self.position + 1}. {self.name} (+{_minutes(self.delay)} min)"


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


class EscalationTarget(models.Model):
    """Whom one escalation level pages. A rotation slot or team lead with no team means "the paged team"
    (the team owning the affected service), so one policy serves every team."""

    class Kind(models.TextChoices):
        ROTATION_SLOT = "rotation_slot", "Rotation slot of a team (on-call)"
        PERSON = "person", "Person"
        TEAM_LEAD = "team_lead", "Team lead"
        HOTLINE = "hotline", "Hotline"

    level = models.ForeignKey(EscalationLevel, on_delete=models.CASCADE, related_name="targets")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="For rotation slot / team lead; empty = the team being paged.",
    )
    slot = models.CharField(max_length=24, choices=Slot.choices, blank=True)
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    hotline = models.ForeignKey(Hotline, null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["level", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="rotation_slot", person__isnull=True, hotline__isnull=True) & ~Q(slot="")
                    | Q(kind="person", person__isnull=False, hotline__isnull=True, team__isnull=True, slot="")
                    | Q(kind="team_lead", person__isnull=True, hotline__isnull=True, slot="")
                    | Q(kind="hotline", hotline__isnull=False, person__isnull=True, team__isnull=True, slot="")
                ),
                name="escalation_target_fields_match_kind",
            ),
        ]

    def __str__(self):
        return self.describe()

    def describe(self) -> str:
        team = str(self.team) if self.team_id else "the paged team"
        if self.kind == self.Kind.ROTATION_SLOT:
            return f"{Slot(self.slot).label} on-call of {team}" if self.slot else "Rotation slot"
        if self.kind == self.Kind.TEAM_LEAD:
            return f"Team lead of {team}"
        if self.kind == self.Kind.PERSON:
            return str(self.person) if self.person_id else "Person"
        return f"{self.hotline} (hotline)" if self.hotline_id else "Hotline"

    def clean(self):
        errors = {}
        if self.kind == self.Kind.ROTATION_SLOT and not self.slot:
            errors["slot"] = "Choose the rotation slot to page (e.g. Primary)."
        if self.kind == self.Kind.PERSON and not self.person_id:
            errors["person"] = "Choose the person to page."
        if self.kind == self.Kind.HOTLINE and not self.hotline_id:
            errors["hotline"] = "Choose the hotline to page."
        # Clear the fields the chosen kind does not use, so the row satisfies the kind/fields constraint.
        if self.kind != self.Kind.ROTATION_SLOT:
            self.slot = ""
        if self.kind != self.Kind.PERSON:
            self.person = None
        if self.kind != self.Kind.HOTLINE:
            self.hotline = None
        if self.kind in (self.Kind.PERSON, self.Kind.HOTLINE):
            self.team = None
        if errors:
            raise ValidationError(errors)

"""Schedules: rotations with ordered members per slot, overrides, and the calendar feeds that publish them."""

from __future__ import annotations

import secrets
from datetime import time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from ..validators import validate_timezone
from .directory import Person, Slot, Team


class Rotation(models.Model):
    """A repeating on-call schedule for one team, like the guide's Week 1/2/3 table.

    Shift k starts at the handoff wall time (in `timezone`) on `first_handoff_date + k * shift_length_days` and ends
    where shift k+1 starts, so shifts never gap or overlap, and the handoff stays at local time across DST changes.
    In shift k, slot S is held by the member at index k mod (number of members of S).
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="rotations")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone], help_text="IANA name; handoffs are in local time."
    )
    shift_length_days = models.PositiveSmallIntegerField(
        default=7, help_text="1 = daily, 7 = weekly, or any number of days."
    )
    handoff_weekday = models.PositiveSmallIntegerField(
        default=0,
        choices=[
            (0, "Monday"),
            (1, "Tuesday"),
            (2, "Wednesday"),
            (3, "Thursday"),
            (4, "Friday"),
            (5, "Saturday"),
            (6, "Sunday"),
        ],
        help_text="For shifts of whole weeks: the weekday of the handoff. The first shift starts on the first such "
        "day on or after the start date.",
    )
    handoff_time = models.TimeField(default=time(9, 0), help_text="Local wall time of the handoff.")
    start_date = models.DateField(help_text="The rotation begins on this date (Week 1 of the table).")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="rotation_name_unique_per_team"),
            models.CheckConstraint(condition=Q(shift_length_days__gte=1), name="rotation_shift_length_positive"),
            models.CheckConstraint(condition=Q(handoff_weekday__lte=6), name="rotation_handoff_weekday_valid"),
        ]

    def __str__(self):
        return f"{self.team} · {self.name}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def first_handoff_date(self):
        """Week 1 starts here: the start date, moved forward to the handoff weekday for whole-week shifts."""
        if self.shift_length_days % 7:
            return self.start_date
        return self.start_date + timedelta(days=(self.handoff_weekday - self.start_date.weekday()) % 7)


class RotationMember(models.Model):
    """One row of a slot's ordered member list (the guide's Engineer A, B, C ... in order)."""

    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="members")
    slot = models.CharField(max_length=24, choices=Slot.choices)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order within the slot: 0 holds Week 1.")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="rotation_memberships")

    class Meta:
        ordering = ["rotation", "slot", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["rotation", "slot", "position"], name="rotation_member_position_unique"),
        ]

    def __str__(self):
        return f"{self.get_slot_display()} #{self.position + 1}: {self.person}"

    def clean(self):
        _require_team_member(self, "person")


def _require_team_member(obj, field: str) -> None:
    # Guards RotationMember and Override: a rotation is drawn from its team. On an admin add page the rotation is
    # not saved yet, but the inline formset has attached it (unsaved, with its team) to the row.
    rotation_cached = type(obj).rotation.is_cached(obj)
    if not obj.person_id or not (obj.rotation_id or rotation_cached):
        return
    team_id = obj.rotation.team_id
    if team_id is None:
        return
    team = obj.rotation.team
    if not team.members.filter(pk=obj.person_id).exists():
        raise ValidationError({field: f"{obj.person} is not a member of {team}; add them to the team first."})


class OverrideQuerySet(models.QuerySet):
    def overlapping(self, start, end) -> OverrideQuerySet:
        return self.filter(start__lt=end, end__gt=start)


class Override(models.Model):
    """A person covers a slot of a rotation for a time window (shift swap, vacation). Overrides win over the rotation;
    where overrides overlap each other, the most recently created one wins."""

    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="overrides")
    slot = models.CharField(max_length=24, choices=Slot.choices, default=Slot.PRIMARY)
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="overrides")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = OverrideQuerySet.as_manager()

    class Meta:
        ordering = ["start", "pk"]
        indexes = [models.Index(fields=["rotation", "start", "end"])]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="override_ends_after_start"),
        ]

    def __str__(self):
        return f"{self.person} covers {self.get_slot_display()} of {self.rotation}"

    def clean(self):
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": "The override must end after it starts."})
        _require_team_member(self, "person")


def new_calendar_token() -> str:
    return secrets.token_urlsafe(32)


class CalendarFeed(models.Model):
    """The secret in a person's ICS feed URLs. Calendar apps cannot log in, so the token is the credential;
    rotating it invalidates every URL handed out before."""

    person = models.OneToOneField(Person, on_delete=models.CASCADE, related_name="calendar_feed")
    token = models.CharField(max_length=64, unique=True, default=new_calendar_token)
    rotated_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Calendar feed of {self.person}"

    @cached_property
    def masked_token(self) -> str:
        return f"{self.token[:4]}…"

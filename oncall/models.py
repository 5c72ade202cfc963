"""The on-call directory and schedules, from the guide's "Response Team Structure", "On-Call Rotation",
"Escalation Path" and "Contact Information" sections.

- Directory: Person (contact) with ContactMethods and NotificationRules (when to use which), Team, Vendor,
  Hotline (emergency contacts and escalation hotlines), ResponseRoleDefault (primary/backup per response role).
- Schedules: Rotation with ordered RotationMembers per Slot (primary, secondary, incident commander), and Overrides.
  Rotations are structured data; `oncall.resolver` computes shifts from them in Python.
- Escalation: EscalationPolicy -> ordered EscalationLevels -> EscalationTargets; `oncall.escalation.plan_escalation`
  turns a policy into a timed schedule.
- CalendarFeed: the per-person secret token behind the ICS feed URLs.
"""

from __future__ import annotations

import secrets
from datetime import time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, validate_email
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from incidents.models import Role

from .validators import normalize_e164, validate_apprise_url, validate_e164, validate_timezone


class Vendor(models.Model):
    """An external provider (hosting, CDN, email ...) the services depend on, with its support channels."""

    name = models.CharField(max_length=120, unique=True)
    support_email = models.EmailField(blank=True)
    support_url = models.URLField(blank=True)
    phone = models.CharField(max_length=20, blank=True, validators=[validate_e164], help_text="E.164, e.g. +15550001.")
    account_reference = models.CharField(max_length=120, blank=True, help_text="Account or contract reference.")
    notes = models.TextField(blank=True)
    services = models.ManyToManyField(
        "incidents.Service", blank=True, related_name="vendors", help_text="Services that depend on this vendor."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        self.phone = _clean_phone(self.phone, "phone")
        if not (self.support_email or self.support_url or self.phone):
            raise ValidationError("Give at least one support channel: email, URL or phone.")


def _clean_phone(value: str, field: str) -> str:
    try:
        return normalize_e164(value)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from exc


class Person(models.Model):
    """A contact who can be paged. Usually linked to a portal user; a vendor's engineer need not be."""

    name = models.CharField(max_length=120)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="person"
    )
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=20, blank=True, validators=[validate_e164], help_text="E.164, e.g. +15550001.")
    chat_handle = models.CharField(max_length=80, blank=True)
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone], help_text="IANA name, e.g. Europe/Berlin."
    )
    vendor = models.ForeignKey(
        Vendor,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contacts",
        help_text="Set for a vendor's engineer.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "people"

    def __str__(self):
        return self.name

    def clean(self):
        self.phone = _clean_phone(self.phone, "phone")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def contact_methods_in_order(self) -> list[ContactMethod]:
        """Active notification preferences, first to try first (uses the prefetch cache when present)."""
        return [m for m in self.contact_methods.all() if m.is_active]

    def notification_rules_in_order(self) -> list[NotificationRule]:
        """Rules whose contact method is active, earliest first (uses the prefetch cache when present)."""
        return [r for r in self.notification_rules.all() if r.contact_method.is_active]


class ContactMethod(models.Model):
    """One way to reach a person (an email address, a phone for SMS or calls, a chat handle, an Apprise URL for
    push and every other device). When the portal uses it is the person's NotificationRules' business."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"
        VOICE = "voice", "Phone call"
        CHAT = "chat", "Chat message"
        PUSH = "push", "Push / other (Apprise URL)"

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="contact_methods")
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in lists; rules decide when it is used.")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    address = models.CharField(
        max_length=500,
        blank=True,
        help_text="Leave empty to use the person's email, phone or chat handle for this channel. Push / other: an "
        "Apprise URL, e.g. ntfy://ntfy.sh/my-topic, pover://user@token, tgram://bottoken/chat_id.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["person", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["person", "position"], name="contact_method_position_unique"),
        ]

    def __str__(self):
        address = self.resolved_address
        if self.channel == self.Channel.PUSH and address:
            address = address.split("://", 1)[0] + "://…"  # an Apprise URL carries tokens: never shown whole
        return f"{self.get_channel_display()} {address or '(no address)'}"

    @property
    def resolved_address(self) -> str:
        if self.address:
            return self.address
        if not self.person_id:
            return ""
        if self.channel == self.Channel.EMAIL:
            return self.person.email
        if self.channel in (self.Channel.SMS, self.Channel.VOICE):
            return self.person.phone
        if self.channel == self.Channel.CHAT:
            return self.person.chat_handle
        return ""

    def clean(self):
        if self.address and self.channel in (self.Channel.SMS, self.Channel.VOICE):
            self.address = _clean_phone(self.address, "address")
        if self.address and self.channel == self.Channel.EMAIL:
            try:
                validate_email(self.address)
            except ValidationError as exc:
                raise ValidationError({"address": exc.messages}) from exc
        if self.channel == self.Channel.PUSH:
            self.address = self.address.strip()
            try:
                validate_apprise_url(self.address)
            except ValidationError as exc:
                raise ValidationError({"address": exc.messages}) from exc
        if self.person_id and not self.resolved_address:
            raise ValidationError(
                {"address": f"{self.person} has no address for {self.get_channel_display()}; enter one here."}
            )


class NotificationRule(models.Model):
    """PagerDuty's personal notification rule: "`delay_minutes` after I am paged, notify me by `contact_method`".
    Every rule of the paged person fires at its time unless the page is acknowledged first; a failed or unanswered
    delivery brings the person's next rule forward to at once. Escalation levels decide who; rules decide how."""

    MAX_DELAY_MINUTES = 120

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="notification_rules")
    contact_method = models.ForeignKey(ContactMethod, on_delete=models.CASCADE, related_name="rules")
    delay_minutes = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_DELAY_MINUTES)],
        help_text="Minutes after the page (0 = at once).",
    )

    class Meta:
        ordering = ["person", "delay_minutes", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["contact_method", "delay_minutes"], name="notification_rule_unique"),
            models.CheckConstraint(
                condition=Q(delay_minutes__lte=120), name="notification_rule_delay_at_most_two_hours"
            ),
        ]

    def __str__(self):
        when = "immediately" if not self.delay_minutes else f"{self.delay_minutes} min after I am paged"
        return f"{when}: {self.contact_method}"

    @property
    def delay(self) -> timedelta:
        return timedelta(minutes=self.delay_minutes)

    def clean(self):
        if self.contact_method_id and self.person_id and self.contact_method.person_id != self.person_id:
            raise ValidationError({"contact_method": "Choose one of this person's own contact methods."})


class Team(models.Model):
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(Person, blank=True, related_name="teams")
    team_lead = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="teams_led")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Hotline(models.Model):
    """An emergency contact or escalation hotline from the guide: a role name reached via a person or a number."""

    class Kind(models.TextChoices):
        EMERGENCY_CONTACT = "emergency_contact", "Emergency contact"
        ESCALATION_HOTLINE = "escalation_hotline", "Escalation hotline"

    name = models.CharField(max_length=120, unique=True, help_text="The role, e.g. Engineering Manager.")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.EMERGENCY_CONTACT)
    description = models.CharField(max_length=200, blank=True)
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="hotlines")
    phone = models.CharField(max_length=20, blank=True, validators=[validate_e164], help_text="E.164, e.g. +15550010.")
    email = models.EmailField(blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["kind", "position", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        self.phone = _clean_phone(self.phone, "phone")
        if not (self.person_id or self.phone):
            raise ValidationError("A hotline needs a person or a phone number.")

    @property
    def number(self) -> str:
        """The number to call: the hotline's own, else its person's."""
        return self.phone or (self.person.phone if self.person_id else "")


class Slot(models.TextChoices):
    """The columns of the guide's On-Call Rotation table."""

    PRIMARY = "primary", "Primary"
    SECONDARY = "secondary", "Secondary"
    INCIDENT_COMMANDER = "incident_commander", "Incident Commander"


class ResponseRoleDefault(models.Model):
    """Who fills a response role by default (the guide's "Primary:" / "Backup:" lines per role)."""

    role = models.CharField(max_length=24, choices=Role.choices, unique=True)
    primary = models.CharField(max_length=120, help_text="Who holds the role first, e.g. On-call Engineering Manager.")
    backup = models.CharField(max_length=120, help_text="Who holds it when the primary cannot.")
    primary_slot = models.CharField(
        max_length=24,
        choices=Slot.choices,
        blank=True,
        help_text="Rotation slot that names the primary at a given time, where the primary is an on-call role.",
    )
    primary_hotline = models.ForeignKey(Hotline, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    backup_hotline = models.ForeignKey(Hotline, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "role"]

    def __str__(self):
        return f"{self.get_role_display()}: {self.primary} / {self.backup}"


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

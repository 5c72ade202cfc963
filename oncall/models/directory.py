"""The directory: people with their contact methods and notification rules, teams, vendors, hotlines, and who
fills each response role by default."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, validate_email
from django.db import models
from django.db.models import Q

from incidents.models import Role

from ..validators import normalize_e164, validate_apprise_url, validate_e164, validate_timezone


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

"""Pages, escalation timers, the notification outbox and its delivery channels.

- Page: one paging run of an incident through an escalation policy. Its deadline (`escalate_at`) is an indexed
  column; the escalation tick claims due rows with SELECT ... FOR UPDATE SKIP LOCKED.
- Notification: the outbox. One row per (page, level, repeat, recipient, notification rule) under a unique key,
  written in the same transaction as the state change that caused it; senders claim, send and mark them sent.
- Reminder: a guide reminder (update cadence missed, close after 24 h resolved) that fired, one row per deadline,
  so each fires once.
- WebhookEndpoint: an outgoing webhook (Slack-compatible or signed generic JSON) told about every page.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.profiles.zones import format_moment


class PageQuerySet(models.QuerySet):
    def open(self) -> PageQuerySet:
        """Pages still waiting for someone: escalating, or past their last level and waiting."""
        return self.filter(state__in=Page.OPEN_STATES)

    def due(self, now) -> PageQuerySet:
        return self.filter(state=Page.State.ACTIVE, escalate_at__lte=now)


class Page(models.Model):
    """One paging run of an incident through an escalation policy.

    `escalation_level` is the position (index in the policy's level order) of the last level that fired; None
    before the first. `repeat` is the pass through the policy (0 = first). `pass_started_at` anchors the pass's
    schedule (oncall.escalation.escalation_times). `escalate_at` is when the next step fires; None when nothing is
    pending. A page never goes back to ACTIVE once acknowledged or stopped.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Paging"
        EXHAUSTED = "exhausted", "Escalation exhausted (hotlines alerted)"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        STOPPED = "stopped", "Stopped"

    OPEN_STATES = (State.ACTIVE, State.EXHAUSTED)

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="pages")
    severity = models.ForeignKey("incidents.SeverityPolicy", on_delete=models.PROTECT, related_name="+")
    policy = models.ForeignKey(
        "oncall.EscalationPolicy", null=True, blank=True, on_delete=models.SET_NULL, related_name="pages"
    )
    team = models.ForeignKey("oncall.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="pages")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    escalation_level = models.SmallIntegerField(null=True, blank=True)
    repeat = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField()
    pass_started_at = models.DateTimeField()
    escalate_at = models.DateTimeField(null=True, blank=True)
    last_escalated_at = models.DateTimeField(null=True, blank=True)
    hotlines_alerted_at = models.DateTimeField(null=True, blank=True)
    # The guide's acknowledge target (5 min): a timeline note when it passes unacknowledged, once.
    acknowledge_due_at = models.DateTimeField(null=True, blank=True)
    acknowledge_target_missed_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_by_person = models.ForeignKey(
        "oncall.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_via = models.CharField(max_length=40, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=200, blank=True)
    # Added responders: someone on the incident paged another team (through its escalation policy) or one
    # person, with a message. The incident's own paging run has is_added False.
    is_added = models.BooleanField(default=False)
    target_person = models.ForeignKey(
        "oncall.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = PageQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [
            # The escalation tick's claim query walks only active pages by deadline.
            models.Index(fields=["escalate_at"], condition=Q(state="active"), name="page_escalate_at_idx"),
            models.Index(
                fields=["acknowledge_due_at"],
                condition=Q(acknowledge_target_missed_at__isnull=True, state__in=["active", "exhausted"]),
                name="page_ack_due_idx",
            ),
            models.Index(fields=["incident", "state"], name="page_incident_state_idx"),
        ]
        constraints = [
            # One escalating run per incident: a severity raise stops the old page before starting a new one.
            models.UniqueConstraint(
                fields=["incident"],
                condition=Q(state__in=["active", "exhausted"], is_added=False),
                name="one_open_page_per_incident",
            ),
        ]

    def __str__(self):
        return f"Page {self.pk} of incident {self.incident_id} ({self.get_state_display()})"

    @property
    def target_label(self) -> str:
        """Whom an added-responder page is for."""
        if self.target_person_id:
            return str(self.target_person)
        return str(self.team) if self.team_id else "—"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def level_number(self) -> int | None:
        """1-based level for people (level 1 = the first)."""
        return None if self.escalation_level is None else self.escalation_level + 1


class WebhookEndpoint(models.Model):
    """An outgoing webhook told about every page: Slack-compatible incoming-webhook JSON, or a generic JSON body
    signed with HMAC-SHA256 (header X-Portal-Signature: sha256=<hex>)."""

    class Format(models.TextChoices):
        SLACK = "slack", "Slack-compatible incoming webhook"
        GENERIC = "generic", "Generic JSON, HMAC-SHA256 signed"

    name = models.CharField(max_length=120, unique=True)
    url = models.URLField(max_length=500)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.SLACK)
    secret = models.CharField(
        max_length=128, blank=True, default="", help_text="Signing secret for the generic format."
    )
    team = models.ForeignKey(
        "oncall.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
        help_text="Only pages of this team; empty = every page.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.format == self.Format.GENERIC and not self.secret:
            self.secret = secrets.token_hex(32)
        super().save(*args, **kwargs)


class Reminder(models.Model):
    """A guide reminder that fired for one deadline; the unique key makes each fire once."""

    class Kind(models.TextChoices):
        UPDATE_CADENCE = "update_cadence", "Internal update overdue"
        CLOSE_RESOLVED = "close_resolved", "Resolved for 24 h: close it"

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="paging_reminders")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "kind", "due_at"], name="reminder_once_per_deadline"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} for incident {self.incident_id}"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    VOICE = "voice", "Phone call"
    CHAT = "chat", "Chat message"
    PUSH = "push", "Push / other (Apprise)"
    WEBHOOK = "webhook", "Outgoing webhook"


class Receipt(models.TextChoices):
    """What is known about a sent message after it left the outbox, in the order it can only move forward:
    logged or handed to a provider, then the provider's receipts (queued, sent), then one final answer."""

    LOGGED = "logged", "Logged, not delivered"
    HANDED = "handed", "Handed to provider"
    QUEUED = "queued", "Queued at provider"
    SENT = "sent", "Sent by provider"
    DELIVERED = "delivered", "Delivered"
    ANSWERED = "answered", "Answered"
    FAILED = "failed", "Failed"
    NO_ANSWER = "no_answer", "No answer"


RECEIPT_RANK = {
    Receipt.LOGGED: 1,
    Receipt.HANDED: 1,
    Receipt.QUEUED: 2,
    Receipt.SENT: 3,
    Receipt.DELIVERED: 4,
    Receipt.ANSWERED: 4,
    Receipt.FAILED: 4,
    Receipt.NO_ANSWER: 4,
}
UNREACHED_RECEIPTS = (Receipt.FAILED, Receipt.NO_ANSWER)


class Notification(models.Model):
    """The outbox. Written in the transaction that decides to notify; delivered by senders that claim rows with
    FOR UPDATE SKIP LOCKED, so a redelivered Celery message or a second sender finds nothing to do."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        STANDBY = "standby", "Standby (fallback if an earlier method fails)"
        SENT = "sent", "Left the outbox"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Purpose(models.TextChoices):
        PAGE = "page", "Page"
        HOTLINE = "hotline", "Hotline alert"
        REMINDER = "reminder", "Reminder"

    idempotency_key = models.CharField(max_length=200, unique=True)
    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="notifications")
    page = models.ForeignKey(Page, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    reminder = models.ForeignKey(
        Reminder, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    purpose = models.CharField(max_length=8, choices=Purpose.choices, default=Purpose.PAGE)
    level = models.SmallIntegerField(null=True, blank=True)
    repeat = models.PositiveSmallIntegerField(default=0)
    person = models.ForeignKey(
        "oncall.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    hotline = models.ForeignKey("oncall.Hotline", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    recipient = models.CharField(max_length=200, help_text="Who, as shown to people (snapshot).")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    address = models.CharField(max_length=500, blank=True)
    method_position = models.PositiveSmallIntegerField(default=0, help_text="Order among the person's methods.")
    subject = models.CharField(max_length=300, blank=True)
    message = models.TextField(blank=True, help_text="Text of a reminder; pages are rendered when sent.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    batched_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batched",
        help_text="Delivered inside this notification's message (rate limit: one message a minute per contact).",
    )
    ack_nonce = models.CharField(max_length=32, default="", blank=True, editable=False)
    # A short code for SMS replies ("ACK 4821"): the reply's sender number and this code find the notification.
    ack_code = models.CharField(max_length=8, default="", blank=True, editable=False)
    rule = models.ForeignKey(
        "oncall.NotificationRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # What is known after sending: the backend's answer, then the provider's status callbacks (forward only).
    receipt = models.CharField(max_length=10, choices=Receipt.choices, blank=True, default="")
    receipt_at = models.DateTimeField(null=True, blank=True)
    provider_status = models.CharField(max_length=20, blank=True, default="", help_text="As the provider said it.")
    provider_id = models.CharField(max_length=64, blank=True, default="", help_text="Message or call SID.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The senders' claim query: pending rows by due time.
            models.Index(fields=["scheduled_for", "id"], condition=Q(status="pending"), name="notification_due_idx"),
            # The rate limit: the last message sent on a channel to an address.
            models.Index(fields=["channel", "address", "-sent_at"], name="notification_rate_idx"),
            models.Index(fields=["incident", "-created_at"], name="notification_incident_idx"),
            models.Index(fields=["person", "-created_at"], name="notification_person_idx"),
            models.Index(fields=["provider_id"], condition=~Q(provider_id=""), name="notification_provider_idx"),
            models.Index(
                fields=["address", "ack_code"],
                condition=Q(channel="sms", status="sent"),
                name="notification_sms_ack_idx",
            ),
        ]

    def __str__(self):
        return f"{self.get_channel_display()} to {self.recipient} ({self.get_status_display()})"

    @property
    def is_final(self) -> bool:
        return self.status in (self.Status.SENT, self.Status.FAILED, self.Status.CANCELLED)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_hex(16)

    @staticmethod
    def new_ack_code() -> str:
        return f"{secrets.randbelow(9000) + 1000}"

    @property
    def state_label(self) -> str:
        """What a person is told: the outbox status until the row leaves the outbox, then the receipt."""
        if self.status == self.Status.SENT and self.receipt:
            return self.get_receipt_display()
        if self.status == self.Status.SENT:
            return "Handed to provider"
        return self.get_status_display()

    @property
    def is_unreached(self) -> bool:
        """Shown in red: logged only, failed, or not answered."""
        return self.status == self.Status.FAILED or self.receipt in (Receipt.LOGGED, *UNREACHED_RECEIPTS)


class AcknowledgeLinkUse(models.Model):
    """A one-click acknowledge link that was used. The unique nonce makes each link single use without locking
    the notification row a sender may hold."""

    nonce = models.CharField(max_length=32, unique=True)
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="link_uses")
    used_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Acknowledge link of notification {self.notification_id} used at {format_moment(self.used_at)}"


class SentMark(models.Model):
    """A notification that left for its provider while its sender's batch transaction was still open, committed
    on the sender's own connection (oncall.paging.sentmarks). Deleted by the batch's commit; a mark left over
    from a worker killed mid-batch tells the next sender the row was sent. No foreign keys: see sentmarks."""

    notification_id = models.BigIntegerField(primary_key=True)
    leader_id = models.BigIntegerField(null=True, blank=True, help_text="The message's first row, if not this one.")
    sent_at = models.DateTimeField()
    receipt = models.CharField(max_length=10, blank=True, default="")
    provider_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["provider_id"], condition=~Q(provider_id=""), name="sentmark_provider_idx"),
        ]

    def __str__(self):
        return f"Notification {self.notification_id} sent at {self.sent_at:%Y-%m-%d %H:%M:%S}"

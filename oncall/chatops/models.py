"""Chat-ops state: who is who in chat, the channel of each incident, the outbox of chat calls and the inbound
requests (slash commands, interactions, events) received from Slack and Mattermost.

- ChatIdentity: a Person's Slack (and Mattermost) user id. Actions from chat run as the Person's portal user.
- IncidentChannel: the incident's own channel (#inc-<number>-<slug>), created on declaration.
- ChatOutbox: every call out to chat, written in the transaction of the change that caused it, under a unique
  idempotency key; the sender claims rows FOR UPDATE SKIP LOCKED, calls Slack and marks them sent. A Slack outage
  leaves rows pending (retried with backoff); it never blocks or fails the portal's own action.
- InboundRequest: a verified request from chat, stored once under a unique key (Slack's event_id, trigger_id or
  view id), so Slack's retries and duplicate deliveries change nothing twice. Celery processes it.
- ChatMessageEntry: a chat message put on the timeline (📌 or "Add to timeline"), once per message.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ChatIdentity(models.Model):
    person = models.OneToOneField("oncall.Person", on_delete=models.CASCADE, related_name="chat_identity")
    slack_user_id = models.CharField(
        max_length=32, blank=True, help_text="Slack member id (U...). Found by email with 'Link to Slack by email'."
    )
    mattermost_user_id = models.CharField(max_length=32, blank=True, help_text="Mattermost user id.")
    linked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "chat identities"
        constraints = [
            models.UniqueConstraint(fields=["slack_user_id"], condition=~Q(slack_user_id=""), name="unique_slack_user"),
            models.UniqueConstraint(
                fields=["mattermost_user_id"], condition=~Q(mattermost_user_id=""), name="unique_mattermost_user"
            ),
        ]

    def __str__(self):
        return f"{self.person} ({self.slack_user_id or self.mattermost_user_id or 'unlinked'})"


class IncidentChannel(models.Model):
    incident = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, related_name="chat_channel")
    provider = models.CharField(max_length=16, default="slack")
    channel_id = models.CharField(max_length=32, blank=True, help_text="Empty until the channel is created.")
    name = models.CharField(max_length=80)
    is_private = models.BooleanField(default=False)
    created_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "channel_id"], condition=~Q(channel_id=""), name="unique_chat_channel"
            )
        ]

    def __str__(self):
        return f"#{self.name}"

    @property
    def url(self) -> str:
        if not self.channel_id:
            return ""
        if settings.SLACK_WORKSPACE_URL:
            return f"{settings.SLACK_WORKSPACE_URL}/archives/{self.channel_id}"
        return f"https://slack.com/app_redirect?channel={self.channel_id}"


class ChatOutbox(models.Model):
    class Action(models.TextChoices):
        CREATE_CHANNEL = "create_channel", "Create the incident channel"
        SET_TOPIC = "set_topic", "Set the channel topic"
        INVITE = "invite", "Invite to the channel"
        POST = "post", "Post to the incident channel"
        ANNOUNCE = "announce", "Post to the announcement channel"
        ARCHIVE = "archive", "Archive the channel"
        MATTERMOST_POST = "mm_post", "Post to Mattermost"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    idempotency_key = models.CharField(max_length=200, unique=True)
    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="chat_outbox")
    action = models.CharField(max_length=16, choices=Action.choices)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    scheduled_for = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "chat outbox message"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["scheduled_for", "id"], condition=Q(status="pending"), name="chat_outbox_due_idx"),
            models.Index(fields=["incident", "id"], name="chat_outbox_incident_idx"),
        ]

    def __str__(self):
        return f"{self.get_action_display()} for incident {self.incident_id} ({self.get_status_display()})"


class InboundRequest(models.Model):
    class Kind(models.TextChoices):
        COMMAND = "command", "Slash command"
        INTERACTION = "interaction", "Interaction"
        EVENT = "event", "Event"

    provider = models.CharField(max_length=16, default="slack")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    dedupe_key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField(default=dict)
    retry_num = models.PositiveSmallIntegerField(default=0, help_text="X-Slack-Retry-Num of the first delivery.")
    duplicates = models.PositiveIntegerField(default=0, help_text="Retries and repeats received and ignored.")
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["received_at"], condition=Q(processed_at__isnull=True), name="inbound_pending_idx")
        ]

    def __str__(self):
        return f"{self.provider} {self.get_kind_display()} {self.dedupe_key}"


class ChatMessageEntry(models.Model):
    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="chat_message_entries")
    channel_id = models.CharField(max_length=32)
    message_ts = models.CharField(max_length=32)
    entry = models.ForeignKey("incidents.TimelineEntry", on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel_id", "message_ts"], name="chat_message_once_on_timeline")
        ]

    def __str__(self):
        return f"{self.channel_id}/{self.message_ts} -> entry {self.entry_id}"

"""Public status page: service states, manual overrides, scheduled maintenance, email subscribers and their
deliveries. Only public data is ever read from here (see selectors); state changes go through services."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from incidents.profiles.zones import format_moment_utc


class ServiceState(models.TextChoices):
    """What users see for a service. Ordered from best to worst; `rank` picks the worst of several causes."""

    OPERATIONAL = "operational", "Operational"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"
    DEGRADED_PERFORMANCE = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"

    @property
    def rank(self) -> int:
        return _STATE_RANKS[self]


_STATE_RANKS = {state: rank for rank, state in enumerate(ServiceState)}

# The guide's severities in users' words: P0 is a complete outage, P1 a major feature unavailable,
# P2/P3 a minor feature broken or cosmetic.
SEVERITY_STATES = {
    "P0": ServiceState.MAJOR_OUTAGE,
    "P1": ServiceState.PARTIAL_OUTAGE,
    "P2": ServiceState.DEGRADED_PERFORMANCE,
    "P3": ServiceState.DEGRADED_PERFORMANCE,
}


def state_for_severity(level: str) -> ServiceState:
    """The public state an active incident of this severity level gives the services it affects."""
    # An unknown level (a policy added later in admin) is shown as degraded rather than hidden.
    return SEVERITY_STATES.get(level, ServiceState.DEGRADED_PERFORMANCE)


class ComponentState(models.Model):
    """The state a status-page update gives one public service ("component", as Statuspage users say). Chosen by
    the Communications Lead for each affected service when the update is posted (prefilled from the severity);
    the public page shows, for each active incident, the states of its latest published update, and nothing
    else about it: an incident that never published an update changes no public state."""

    update = models.ForeignKey("incidents.StatusUpdate", on_delete=models.CASCADE, related_name="component_states")
    service = models.ForeignKey("incidents.Service", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=24, choices=ServiceState.choices)

    class Meta:
        ordering = ["update", "service__name"]
        constraints = [models.UniqueConstraint(fields=["update", "service"], name="unique_component_state")]

    def __str__(self):
        return f"{self.service_id}: {self.state} (update {self.update_id})"

    @property
    def service_state(self) -> ServiceState:
        return ServiceState(self.state)


class ServiceStatusOverride(models.Model):
    """A Communications Lead's manual state for one public service; wins over the derived state while it exists."""

    service = models.OneToOneField("incidents.Service", on_delete=models.CASCADE, related_name="status_override")
    state = models.CharField(max_length=24, choices=ServiceState.choices)
    message = models.CharField(max_length=300, blank=True, help_text="Shown publicly next to the service.")
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "service status override"

    def __str__(self):
        return f"{self.service}: {self.get_state_display()}"


class MaintenanceWindowQuerySet(models.QuerySet):
    def in_progress(self, at) -> MaintenanceWindowQuerySet:
        return self.filter(starts_at__lte=at, ends_at__gt=at)

    def upcoming(self, at) -> MaintenanceWindowQuerySet:
        return self.filter(starts_at__gt=at)


class MaintenanceWindow(models.Model):
    """Scheduled maintenance for some services: announced on the status page, and while it runs alerts for
    those services do not declare incidents automatically (they are still recorded)."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="What users will notice. Plain text, shown publicly.")
    services = models.ManyToManyField("incidents.Service", related_name="maintenance_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [models.Index(fields=["ends_at", "starts_at"], name="maintenance_window_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="maintenance_ends_after_start")
        ]

    def __str__(self):
        return f"{self.title} ({format_moment_utc(self.starts_at)} to {format_moment_utc(self.ends_at)})"

    def clean(self):
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The maintenance must end after it starts."})

    def is_in_progress(self, at=None) -> bool:
        at = at or timezone.now()
        return self.starts_at <= at < self.ends_at


class Subscriber(models.Model):
    """An email address that asked for status page updates. Mailed only once confirmed (double opt-in)
    and until unsubscribed. `all_services` or a chosen set of public services."""

    email = models.EmailField(max_length=254, unique=True, help_text="Stored lower-cased.")
    all_services = models.BooleanField(default=True)
    services = models.ManyToManyField("incidents.Service", blank=True, related_name="status_subscribers")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["email"]
        indexes = [models.Index(fields=["confirmed_at", "unsubscribed_at"], name="subscriber_active_idx")]

    def __str__(self):
        return self.email

    @property
    def is_active(self) -> bool:
        return self.confirmed_at is not None and self.unsubscribed_at is None


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class UpdateDelivery(models.Model):
    """Outbox row: one published status page update for one subscriber. Unique, so a redelivered or
    duplicated task finds the row already sent and never mails twice."""

    update = models.ForeignKey("incidents.StatusUpdate", on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=8, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "update deliveries"
        constraints = [models.UniqueConstraint(fields=["update", "subscriber"], name="unique_update_delivery")]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="delivery_pending_due_idx")
        ]

    def __str__(self):
        return f"update {self.update_id} -> {self.subscriber_id} ({self.state})"


class HistoryRollup(models.Model):
    """One past day of the public page's incident history, rendered once (a derived cache, rebuilt on read when
    `key` no longer matches what the day shows: its incidents' updates and states, its finished maintenance and
    the public service names). Keeps a cold render of the 90-day page independent of how much history there is."""

    day = models.DateField(unique=True)
    key = models.CharField(max_length=64)
    html = models.TextField()
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]

    def __str__(self):
        return f"history {self.day}"

"""Inbound integrations, alert groups with deduplication, change events and API tokens.

An Integration is one configured sender (an Alertmanager, a Grafana contact point, a Sentry internal integration,
a PagerDuty-style routing key, a generic JSON or change-event source). Every event it sends is normalised into one
AlertEvent row; events with the same dedup key fold into one open AlertGroup (a partial unique constraint keeps at
most one open group per key, so concurrent deliveries cannot create two). Routing rules decide the service, the
severity policy and whether an incident is declared or the group attached to an open incident of that service.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def hash_secret(value: str) -> str:
    """Keys and tokens are stored as sha256 hex: they are long random strings, so a slow hash buys nothing,
    and a fast, deterministic one lets the lookup be a single indexed equality."""
    return hashlib.sha256(value.encode()).hexdigest()


class IntegrationKind(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Prometheus Alertmanager (webhook v4)"
    GRAFANA = "grafana", "Grafana alerting webhook"
    SENTRY = "sentry", "Sentry (integration platform webhooks)"
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2 compatible"
    GENERIC = "generic", "Generic JSON events"
    CHANGE = "change", "Change events (deploys, migrations, config changes)"
    HEARTBEAT = "heartbeat", "Heartbeat monitors (missed pings open alerts)"
    CERTIFICATE = "certificate", "Certificate watch (TLS certificates expiring)"


class Severity(models.TextChoices):
    """Normalised alert severity (PagerDuty's four levels; other formats map onto them)."""

    CRITICAL = "critical", "Critical"
    ERROR = "error", "Error"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class RouteAction(models.TextChoices):
    DECLARE = "declare", "Declare an incident (or attach to the service's open incident)"
    ATTACH = "attach", "Attach to the service's open incident, if there is one"
    RECORD = "record", "Record the alert only"


class Integration(models.Model):
    """One inbound sender and its credentials.

    The key (bearer token, basic-auth password or PagerDuty routing_key) is shown once on creation and stored
    only as sha256. The HMAC secret (Grafana, Sentry) must be kept in clear: verifying a signature needs it.
    """

    kind = models.CharField(max_length=16, choices=IntegrationKind.choices)
    name = models.CharField(max_length=120, unique=True)
    public_id = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="Identifies the integration in its URL for senders that can only sign (Sentry). Not a secret.",
    )
    key_prefix = models.CharField(max_length=8, blank=True, editable=False, help_text="First characters of the key.")
    key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    hmac_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="Grafana: the contact point's HMAC secret (signature then required). Sentry: the client secret.",
    )
    hmac_timestamp_header = models.CharField(
        max_length=80,
        blank=True,
        help_text="Grafana only: the timestamp header configured on the contact point (signs 'timestamp:body').",
    )
    default_service = models.ForeignKey(
        "incidents.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    default_action = models.CharField(max_length=8, choices=RouteAction.choices, default=RouteAction.ATTACH)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty uses the ALERTING_RATE_LIMIT_PER_MINUTE setting."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    def rotate_key(self) -> str:
        """Set a new random key and return it (the only time it is visible). 32 hex characters, the length
        of a PagerDuty integration key, so PagerDuty senders that validate the length accept it."""
        key = secrets.token_hex(16)
        self.key_prefix = key[:8]
        self.key_hash = hash_secret(key)
        return key


class RoutingRule(models.Model):
    """First matching rule (by position) wins; no match falls back to the integration's defaults.

    A rule matches when every label in `match_labels` equals the alert's label and, if set, the alert's
    normalised severity is `match_severity`."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveSmallIntegerField(default=0)
    match_labels = models.JSONField(default=dict, blank=True, help_text='e.g. {"team": "payments", "env": "prod"}')
    match_severity = models.CharField(max_length=8, choices=Severity.choices, blank=True)
    service = models.ForeignKey("incidents.Service", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    severity_policy = models.ForeignKey(
        "incidents.SeverityPolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Severity of a declared incident; empty maps critical->P1, error->P2, warning/info->P3.",
    )
    action = models.CharField(max_length=8, choices=RouteAction.choices, default=RouteAction.ATTACH)

    class Meta:
        ordering = ["integration", "position", "id"]

    def __str__(self):
        return f"rule {self.position} of {self.integration_id}: {self.get_action_display()}"

    def matches(self, *, labels: dict, severity: str) -> bool:
        if self.match_severity and self.match_severity != severity:
            return False
        return all(str(labels.get(key)) == str(value) for key, value in (self.match_labels or {}).items())


class GroupStatus(models.TextChoices):
    TRIGGERED = "triggered", "Triggered"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class AlertGroup(models.Model):
    """All events with one dedup key while it is open. resolved_at IS NULL marks the open group; the partial
    unique constraint is the deduplication (INSERT ... ON CONFLICT against it), never a check-then-insert."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="groups")
    dedup_key = models.CharField(max_length=255)
    status = models.CharField(max_length=12, choices=GroupStatus.choices, default=GroupStatus.TRIGGERED)
    summary = models.CharField(max_length=1024)
    source = models.CharField(max_length=255, blank=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.ERROR)
    labels = models.JSONField(default=dict, blank=True)
    link = models.URLField(max_length=1000, blank=True)
    service = models.ForeignKey("incidents.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alert_groups",
        db_index=False,  # alertgroup_incident_idx (incident, first_seen_at) serves it; one index less per insert
    )
    event_count = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "dedup_key"],
                condition=Q(resolved_at__isnull=True),
                name="alertgroup_one_open_per_key",
            )
        ]
        indexes = [
            models.Index(fields=["incident", "first_seen_at"], name="alertgroup_incident_idx"),
            models.Index(fields=["status", "-first_seen_at"], name="alertgroup_status_idx"),
        ]

    def __str__(self):
        return f"{self.dedup_key[:60]} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class EventAction(models.TextChoices):
    TRIGGER = "trigger", "Trigger"
    ACKNOWLEDGE = "acknowledge", "Acknowledge"
    RESOLVE = "resolve", "Resolve"


class AlertEvent(models.Model):
    """One normalised event as received (an Alertmanager webhook of 100 alerts writes 100 rows). `group` is empty
    for an acknowledge/resolve that found no open group: still recorded, so nothing received is silently lost."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="events")
    group = models.ForeignKey(
        AlertGroup,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,  # alertevent_group_idx (group, received_at) serves it; one index less per insert
    )
    action = models.CharField(max_length=12, choices=EventAction.choices)
    dedup_key = models.CharField(max_length=255)
    summary = models.CharField(max_length=1024, blank=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="When the sender says it happened.")
    received_at = models.DateTimeField(default=timezone.now)
    payload = models.JSONField(default=dict, blank=True, help_text="The part of the request this event came from.")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["group", "received_at"], name="alertevent_group_idx")]

    def __str__(self):
        return f"{self.action} {self.dedup_key[:60]}"


class ChangeKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    MIGRATION = "migration", "Database migration"
    CONFIG = "config", "Configuration change"
    FEATURE_FLAG = "feature_flag", "Feature flag"
    OTHER = "other", "Other change"


class ChangeEvent(models.Model):
    """A deploy, migration or config change. The triage checklist asks "what changed recently?": the incident
    page lists the changes to its services in the hours before it started."""

    integration = models.ForeignKey(Integration, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    service = models.ForeignKey(
        "incidents.Service", null=True, blank=True, on_delete=models.CASCADE, related_name="change_events"
    )
    kind = models.CharField(max_length=16, choices=ChangeKind.choices, default=ChangeKind.DEPLOY)
    summary = models.CharField(max_length=1024)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=255, blank=True)
    link = models.URLField(max_length=1000, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["service", "-occurred_at"], name="change_service_time_idx")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.summary[:80]}"


class IntegrationError(models.Model):
    """A refused inbound request (bad JSON, bad signature, unknown action, too large, rate limited ...).
    Written in its own transaction, outside the rejected request's (which wrote nothing)."""

    integration = models.ForeignKey(Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="errors")
    kind = models.CharField(max_length=16, choices=IntegrationKind.choices)
    status_code = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=40)
    message = models.CharField(max_length=500)
    field = models.CharField(max_length=200, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    body_excerpt = models.TextField(blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["integration", "-occurred_at"], name="integrationerror_idx")]

    def __str__(self):
        return f"{self.status_code} {self.code}"


class SeenSignature(models.Model):
    """Signatures of accepted signed deliveries (Sentry, Grafana), so a byte-identical replay is refused for
    ALERTING_REPLAY_WINDOW_SECONDS. `digest` is sha256 of the integration id and the signature; an expired row
    is reused by the next delivery with the same digest and pruned hourly by the alerting tick."""

    digest = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.digest[:12]} {self.seen_at:%Y-%m-%d %H:%M:%S}"


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        """Not revoked, not expired, and younger than API_TOKEN_MAX_LIFETIME_DAYS (so lowering the setting
        ends older tokens, and tokens made before expiries were required still end)."""
        now = timezone.now()
        oldest = now - timedelta(days=settings.API_TOKEN_MAX_LIFETIME_DAYS)
        return self.filter(revoked_at__isnull=True, created_at__gt=oldest).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A personal API token: `ipt_` + 40 random characters, shown once, stored as sha256.
    It acts with its owner's groups; revoking it (by the owner or staff) takes effect on the next request.
    The owner is set once, by create_api_token, to the person creating it; it never changes."""

    PREFIX = "ipt_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'deploy pipeline'.")
    key_prefix = models.CharField(max_length=12, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.key_prefix}...)"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        if self.revoked_at is not None:
            return False
        if self.created_at <= now - timedelta(days=settings.API_TOKEN_MAX_LIFETIME_DAYS):
            return False
        return self.expires_at is None or self.expires_at > now

    @classmethod
    def new_key(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(30)


class HeartbeatState(models.TextChoices):
    NEW = "new", "Waiting for the first ping"
    UP = "up", "Up"
    RUNNING = "running", "Running (started, not finished)"
    LATE = "late", "Missed: alert open"
    FAILED = "failed", "Reported failure: alert open"
    PAUSED = "paused", "Paused"


class Heartbeat(models.Model):
    """A job or service that pings the portal at least every `period`; a ping missing for `period + grace` opens an
    alert group (routed like any alert through the heartbeat integration's rules), and the next ping resolves it.

    The ping URL's UUID is its only credential (like healthchecks.io): long, random, shown to managers, rotatable.
    `due_at` is the deadline column the tick claims; NULL while paused or before the first ping."""

    name = models.CharField(max_length=120, unique=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    service = models.ForeignKey("incidents.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    period = models.DurationField(help_text="How often the job pings, e.g. 00:05:00 for every five minutes.")
    grace = models.DurationField(
        default=timedelta(minutes=1), help_text="How late a ping may be before the heartbeat counts as missed."
    )
    severity = models.CharField(
        max_length=8, choices=Severity.choices, default=Severity.ERROR, help_text="Severity of the alert it opens."
    )
    state = models.CharField(max_length=8, choices=HeartbeatState.choices, default=HeartbeatState.NEW, editable=False)
    is_active = models.BooleanField(default=True, help_text="Untick to pause: no alert while paused.")
    last_ping_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_start_at = models.DateTimeField(null=True, blank=True, editable=False)
    ping_count = models.PositiveBigIntegerField(default=0, editable=False)
    due_at = models.DateTimeField(null=True, blank=True, editable=False)
    alert_open = models.BooleanField(default=False, editable=False)
    alerted_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # The ping rate limit, counted in the row by the ping's own UPDATE (no round trip of its own): pings in the
    # minute `rate_window` (Unix time // 60) so far.
    rate_window = models.BigIntegerField(default=0, editable=False)
    rate_count = models.PositiveIntegerField(default=0, editable=False)
    # The portal's own timer this heartbeat watches (a beat tick's name, e.g. "paging-escalation-tick"): the worker
    # pings it after each successful run (oncall.health). Empty for the jobs managers add.
    tick = models.CharField(max_length=100, blank=True, default="", editable=False)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(
                fields=["due_at"],
                name="heartbeat_due_idx",
                condition=Q(is_active=True, alert_open=False, due_at__isnull=False),
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(period__gt=timedelta(0)), name="heartbeat_period_positive"),
            models.CheckConstraint(condition=Q(grace__gte=timedelta(0)), name="heartbeat_grace_not_negative"),
            models.UniqueConstraint(fields=["tick"], condition=~Q(tick=""), name="heartbeat_one_per_tick"),
        ]

    def __str__(self):
        return self.name

    @property
    def dedup_key(self) -> str:
        return f"heartbeat:{self.public_id}"

    def status_at(self, now) -> tuple[str, str]:
        """(code, words) as the heartbeat list shows it now, whether or not the tick has looked yet: "late" once the
        deadline has passed, "down" once a second deadline has passed too (no ping for two periods and graces)."""
        if not self.is_active:
            return "paused", "Paused"
        if self.due_at is not None and now > self.due_at:
            overdue = now - self.due_at
            silent = now - (self.last_ping_at or self.created_at)
            words = f"no ping for {_duration(silent)}"
            if self.state == HeartbeatState.FAILED:
                return "failed", f"Reported failure; {words}"
            if overdue > self.period + self.grace:
                return "down", f"Down: {words}"
            return "late", f"Late: {words}"
        return self.state, self.get_state_display()


def _duration(delta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"

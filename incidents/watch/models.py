"""Triage probes (the guide's triage script as data: health check, TCP connect, Prometheus query per service) and
the certificate expiry watch (each HTTPS endpoint of a service, checked daily)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class ProbeKind(models.TextChoices):
    HTTP = "http", "HTTP(S) health check"
    TCP = "tcp", "TCP connect"
    PROMETHEUS = "prometheus", "Prometheus query"


class Comparison(models.TextChoices):
    GT = ">", "above"
    GE = ">=", "at or above"
    LT = "<", "below"
    LE = "<=", "at or below"


class Probe(models.Model):
    """One check of a service, run on declaration and from the incident page's "Run triage".

    http: `url` must answer `expected_status` within `timeout_seconds` (redirects followed only on the same host).
    tcp: `host`:`port` must accept a connection. prometheus: the instant query `query` (PROMETHEUS_URL) must not
    cross `threshold` (the probe fails when the value is `comparison` the threshold, e.g. error rate > 0.05)."""

    service = models.ForeignKey("incidents.Service", on_delete=models.CASCADE, related_name="probes")
    name = models.CharField(max_length=120, help_text='Shown on the timeline, e.g. "Health endpoint".')
    kind = models.CharField(max_length=12, choices=ProbeKind.choices)
    position = models.PositiveSmallIntegerField(default=0)
    url = models.URLField(max_length=500, blank=True, help_text="http: the URL to request.")
    expected_status = models.PositiveSmallIntegerField(
        default=200, validators=[MinValueValidator(100), MaxValueValidator(599)]
    )
    host = models.CharField(max_length=253, blank=True, help_text="tcp: the host name or address.")
    port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)], help_text="tcp: the port."
    )
    query = models.CharField(max_length=1000, blank=True, help_text="prometheus: the PromQL instant query.")
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField(null=True, blank=True, help_text="prometheus: the value that counts as failing.")
    timeout_seconds = models.FloatField(
        default=3.0, validators=[MinValueValidator(0.1), MaxValueValidator(10.0)], help_text="At most 10 seconds."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["service", "position", "id"]

    def __str__(self):
        return f"{self.service}: {self.name}"


class MonitoredCertificate(models.Model):
    """An HTTPS endpoint whose certificate is checked daily. `alerted_stage` is the last warning sent (30, 14, 7, 1
    days left, 0 for expired or invalid), so each stage alerts once; a renewed certificate resets it."""

    service = models.ForeignKey("incidents.Service", on_delete=models.CASCADE, related_name="certificates")
    hostname = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=443, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_check_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    not_after = models.DateTimeField(null=True, blank=True, editable=False)
    chain_valid = models.BooleanField(null=True, editable=False)
    error = models.CharField(max_length=500, blank=True, editable=False)
    alerted_stage = models.SmallIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["not_after", "hostname"]
        constraints = [
            models.UniqueConstraint(fields=["service", "hostname", "port"], name="certificate_once_per_service"),
        ]
        indexes = [
            models.Index(fields=["not_after"], name="certificate_expiry_idx", condition=Q(not_after__isnull=False))
        ]

    def __str__(self):
        return f"{self.hostname}:{self.port}"

    @property
    def dedup_key(self) -> str:
        # By row, not by host and port: editing the endpoint keeps its open alert resolvable.
        return f"certificate:{self.pk}"

from django import forms
from django.contrib import admin
from django.utils import timezone

from .models import MonitoredCertificate, Probe, ProbeKind


class ProbeForm(forms.ModelForm):
    class Meta:
        model = Probe
        fields = [
            "service", "name", "kind", "position", "url", "expected_status", "host", "port", "query", "comparison",
            "threshold", "timeout_seconds", "is_active",
        ]  # fmt: skip

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind == ProbeKind.HTTP and not cleaned.get("url"):
            self.add_error("url", "An HTTP probe needs the URL to request.")
        if kind == ProbeKind.TCP:
            if not cleaned.get("host"):
                self.add_error("host", "A TCP probe needs the host to connect to.")
            if not cleaned.get("port"):
                self.add_error("port", "A TCP probe needs the port to connect to.")
        if kind == ProbeKind.PROMETHEUS and not (cleaned.get("query") or "").strip():
            self.add_error("query", "A Prometheus probe needs the PromQL query to run.")
        return cleaned


@admin.register(Probe)
class ProbeAdmin(admin.ModelAdmin):
    """The guide's triage script as data: run on declaration and from the incident page's "Run triage"."""

    form = ProbeForm
    list_display = ["name", "service", "kind", "timeout_seconds", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "service__name", "url", "host", "query"]
    list_select_related = ["service"]


@admin.register(MonitoredCertificate)
class MonitoredCertificateAdmin(admin.ModelAdmin):
    """HTTPS endpoints whose certificates are checked daily (a service's HTTPS health URL is added on its own)."""

    list_display = ["hostname", "port", "service", "days_left", "chain_valid", "last_checked_at", "error"]
    list_select_related = ["service"]
    search_fields = ["hostname", "service__name"]
    fields = ["service", "hostname", "port", "not_after", "chain_valid", "error", "last_checked_at", "alerted_stage"]
    readonly_fields = ["not_after", "chain_valid", "error", "last_checked_at", "alerted_stage"]

    @admin.display(description="Days left", ordering="not_after")
    def days_left(self, obj):
        if obj.not_after is None:
            return "—"
        return int((obj.not_after - timezone.now()).total_seconds() // 86400)

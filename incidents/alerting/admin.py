from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from incidents.errors import DomainError
from incidents.models import Incident
from incidents.profiles.zones import format_moment

from . import heartbeats
from .models import (
    AlertEvent,
    AlertGroup,
    ApiToken,
    ChangeEvent,
    Heartbeat,
    HeartbeatState,
    Integration,
    IntegrationError,
    RoutingRule,
)
from .services.integrations import rotate_integration_key
from .services.tokens import check_api_token_expiry, create_api_token, rename_api_token, revoke_api_token


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    extra = 0
    fields = ["position", "match_labels", "match_severity", "service", "severity_policy", "action"]


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "key_prefix", "default_service", "default_action", "is_active", "error_count"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name"]
    readonly_fields = ["public_id", "key_prefix", "endpoint", "created_at", "recent_errors"]
    inlines = [RoutingRuleInline]
    actions = ["rotate_keys"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_error_count=Count("errors"))

    @admin.display(description="errors", ordering="_error_count")
    def error_count(self, obj):
        url = reverse("admin:alerting_integrationerror_changelist") + f"?integration__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj._error_count)

    @admin.display(description="endpoint")
    def endpoint(self, obj):
        if not obj.pk:
            return "Saved first; the key is shown once after saving."
        paths = {
            "alertmanager": "/api/v1/integrations/alertmanager/ (Authorization: Bearer <key>)",
            "grafana": f"/api/v1/integrations/grafana/ (Bearer <key>) or /api/v1/integrations/grafana/{obj.public_id}/"
            " (HMAC signature only)",
            "sentry": f"/api/v1/integrations/sentry/{obj.public_id}/ (Sentry-Hook-Signature with the client secret)",
            "pagerduty": "/api/v1/integrations/pagerduty/v2/enqueue (routing_key = the key)",
            "generic": "/api/v1/integrations/generic/ (Authorization: Bearer <key>)",
            "change": "/api/v1/integrations/change/ (Authorization: Bearer <key>)",
        }
        return paths.get(obj.kind, "")

    @admin.display(description="recent errors")
    def recent_errors(self, obj):
        rows = list(obj.errors.order_by("-occurred_at")[:5]) if obj.pk else []
        if not rows:
            return "none"
        return format_html(
            "<br>".join(["{}"] * len(rows)),
            *[f"{format_moment(e.occurred_at)} {e.status_code} {e.code}: {e.message}" for e in rows],
        )

    def save_model(self, request, obj, form, change):
        # A new integration gets its key here; it is stored hashed, so this message is the only place it appears.
        if not change or not obj.key_hash:
            key = obj.rotate_key()
            super().save_model(request, obj, form, change)
            self.message_user(request, f"Key for {obj.name} (shown once, store it now): {key}", messages.WARNING)
        else:
            super().save_model(request, obj, form, change)

    @admin.action(description="Rotate the key of the selected integrations (the old key stops working)")
    def rotate_keys(self, request, queryset):
        for integration in queryset:
            key = rotate_integration_key(integration=integration)
            self.message_user(request, f"New key for {integration.name} (shown once): {key}", messages.WARNING)


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    fields = ["received_at", "action", "summary", "severity", "occurred_at"]
    readonly_fields = fields
    can_delete = False
    max_num = 0
    ordering = ["-received_at"]


@admin.register(AlertGroup)
class AlertGroupAdmin(admin.ModelAdmin):
    list_display = [
        "dedup_key",
        "integration",
        "status",
        "severity",
        "summary",
        "service",
        "incident",
        "event_count",
        "first_seen_at",
        "last_seen_at",
    ]
    list_filter = ["status", "severity", "integration"]
    search_fields = ["dedup_key", "summary", "source"]
    list_select_related = ["integration", "service", "incident"]
    date_hierarchy = "first_seen_at"
    # Groups change only through ingestion; the admin looks, it does not edit.
    readonly_fields = [f.name for f in AlertGroup._meta.fields]
    inlines = [AlertEventInline]

    def get_queryset(self, request):
        # Alerts attached to a restricted incident stay hidden from staff who may not see it.
        visible = Incident.objects.visible_to(request.user)
        return super().get_queryset(request).filter(Q(incident__isnull=True) | Q(incident__in=visible))

    def has_add_permission(self, request):
        return False


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "integration", "action", "dedup_key", "summary", "group"]
    list_filter = ["action", "integration"]
    search_fields = ["dedup_key", "summary"]
    list_select_related = ["integration", "group"]
    readonly_fields = [f.name for f in AlertEvent._meta.fields]

    def get_queryset(self, request):
        visible = Incident.objects.visible_to(request.user)
        return super().get_queryset(request).filter(Q(group__incident__isnull=True) | Q(group__incident__in=visible))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ChangeEvent)
class ChangeEventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "kind", "service", "summary", "source", "integration"]
    list_filter = ["kind", "service"]
    search_fields = ["summary", "description", "source"]
    list_select_related = ["service", "integration"]
    date_hierarchy = "occurred_at"


@admin.register(IntegrationError)
class IntegrationErrorAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "kind", "integration", "status_code", "code", "field", "message", "remote_addr"]
    list_filter = ["kind", "status_code", "code", "integration"]
    search_fields = ["message", "code"]
    list_select_related = ["integration"]
    readonly_fields = [f.name for f in IntegrationError._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ApiTokenForm(forms.ModelForm):
    """A new token's owner is whoever creates it: the form has no user field, on purpose."""

    class Meta:
        model = ApiToken
        fields = ["name", "expires_at"]
        help_texts = {"expires_at": "Empty: the longest lifetime allowed (API_TOKEN_MAX_LIFETIME_DAYS)."}

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        try:
            check_api_token_expiry(value)
        except DomainError as error:
            raise forms.ValidationError(error.message) from None
        return value


class ApiTokenRenameForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Everyone creates tokens for themselves only; the owner renames their own; staff see everyone's and may
    only revoke them (the "Revoke" action). The owner and the expiry never change after creation."""

    list_display = ["name", "user", "key_prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "key_prefix"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiTokenRenameForm if obj is not None else ApiTokenForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "expires_at"]
        return ["user", "name", "expires_at", "key_prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["user", "expires_at", "key_prefix", "created_at", "last_used_at", "revoked_at"]

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.user_id != request.user.pk:
            return False  # others' tokens: view and revoke only
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the row stays as the record of the key

    def save_model(self, request, obj, form, change):
        if change:
            rename_api_token(token=obj, by=request.user, name=form.cleaned_data["name"])
            return
        token, key = create_api_token(
            user=request.user, name=form.cleaned_data["name"], expires_at=form.cleaned_data.get("expires_at")
        )
        obj.pk, obj.user, obj.key_prefix, obj.created_at = token.pk, token.user, token.key_prefix, token.created_at
        self.message_user(request, f"Token for {token.user} (shown once, store it now): {key}", messages.WARNING)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            revoke_api_token(token=token, by=request.user)
            count += 1
        self.message_user(request, f"Revoked {count} token(s) at {format_moment(timezone.now())}.")


class HeartbeatForm(forms.ModelForm):
    class Meta:
        model = Heartbeat
        fields = ["name", "service", "period", "grace", "severity", "is_active"]

    def clean(self):
        cleaned = super().clean()
        try:
            heartbeats.check_schedule(period=cleaned.get("period"), grace=cleaned.get("grace"))
        except heartbeats.HeartbeatError as error:
            self.add_error(error.field, error.message)
        return cleaned


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    """Managers create a heartbeat and give its ping URL to the job; missed pings open alerts through the
    "Heartbeat monitors" integration, whose routing rules decide what they do."""

    form = HeartbeatForm
    list_display = ["name", "service", "status", "period", "grace", "last_ping_at", "ping_count", "due_at", "is_active"]
    list_filter = ["state", "is_active"]
    search_fields = ["name", "tick"]
    list_select_related = ["service"]
    readonly_fields = [
        "ping_url", "portal_timer", "status", "last_ping_at", "ping_count", "last_start_at", "due_at", "alerted_at"
    ]  # fmt: skip

    @admin.display(description="State")
    def status(self, obj):
        """As of now, also before the missed-heartbeat check has looked: late, then down, when pings stop."""
        code, words = obj.status_at(timezone.now())
        return format_html('<span class="heartbeat-{}">{}</span>', code, words)

    @admin.display(description="Portal timer")
    def portal_timer(self, obj):
        if not obj.tick:
            return "No: a job or service pings it."
        return f"Yes: the portal's {obj.tick} pings it after each successful run."

    @admin.display(description="Ping URL (GET or POST; add start or fail to the path)")
    def ping_url(self, obj):
        if obj.pk is None:
            return "Shown once the heartbeat is saved."
        if obj.tick:
            return "None: the portal pings it itself."
        url = f"{settings.SITE_URL}{reverse('heartbeats:ping', args=[obj.public_id])}"
        return format_html("<code>{}</code>", url)

    def save_model(self, request, obj, form, change):
        if not change:
            # The first deadline starts with the first ping (healthchecks.io's "new" state).
            obj.state = HeartbeatState.NEW
        elif "is_active" in form.changed_data and not obj.is_active:
            obj.state, obj.due_at = HeartbeatState.PAUSED, None
        elif "is_active" in form.changed_data and obj.is_active:
            obj.state = HeartbeatState.NEW if obj.last_ping_at is None else HeartbeatState.UP
            obj.due_at = None if obj.last_ping_at is None else timezone.now() + obj.period + obj.grace
        super().save_model(request, obj, form, change)

"""Admin: the notification outbox (status, filters, read-only), pages (read-only, acknowledged through the
service), fired reminders, and outgoing webhook endpoints (editable)."""

from django.contrib import admin, messages
from django.utils.html import format_html

from incidents.errors import DomainError
from incidents.interface import ReadOnlyAdmin, ReadOnlyInline
from incidents.models import Incident
from incidents.services.status import acknowledge_incident

from . import selectors
from .models import AcknowledgeLinkUse, Notification, Page, Reminder, WebhookEndpoint


class ChannelWarningMixin:
    """The paging admin's lists say so when the directory uses a channel that reaches nobody."""

    def changelist_view(self, request, extra_context=None):
        warning = selectors.channel_warning()
        if warning:
            self.message_user(request, warning, messages.WARNING)
        return super().changelist_view(request, extra_context)


def state_html(obj: Notification):
    """The notification's state as people read it: red when logged only, failed or not answered."""
    css = "state-bad" if obj.is_unreached else "state-ok"
    style = "color:#b00020;font-weight:600" if obj.is_unreached else ""
    return format_html('<span class="{}" style="{}">{}</span>', css, style, obj.state_label)


@admin.register(Notification)
class NotificationAdmin(ChannelWarningMixin, ReadOnlyAdmin):
    list_display = [
        "created_at",
        "incident_link",
        "purpose",
        "level_display",
        "recipient",
        "channel",
        "address",
        "state",
        "attempts",
        "sent_at",
        "short_error",
    ]
    list_filter = ["status", "receipt", "channel", "purpose", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["recipient", "address", "idempotency_key", "=incident__number"]
    date_hierarchy = "created_at"
    list_select_related = ["incident"]
    list_per_page = 100
    readonly_fields = [f.name for f in Notification._meta.fields]

    def get_queryset(self, request):
        # Restricted incidents stay hidden from staff who may not see them (the one visibility rule).
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))

    @admin.display(description="incident", ordering="incident__number")
    def incident_link(self, obj):
        return format_html('<a href="{}">{}</a>', obj.incident.get_absolute_url(), obj.incident.reference)

    @admin.display(description="level", ordering="level")
    def level_display(self, obj):
        if obj.level is None:
            return "-"
        return f"{obj.level + 1}" + (f" (repeat {obj.repeat + 1})" if obj.repeat else "")

    @admin.display(description="state", ordering="status")
    def state(self, obj):
        return state_html(obj)

    @admin.display(description="last error")
    def short_error(self, obj):
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error


class NotificationInline(ReadOnlyInline):
    model = Notification
    fk_name = "page"
    fields = ["created_at", "level", "repeat", "recipient", "channel", "address", "state", "sent_at", "last_error"]

    @admin.display(description="state")
    def state(self, obj):
        return state_html(obj)

    show_change_link = True


@admin.register(Page)
class PageAdmin(ChannelWarningMixin, admin.ModelAdmin):
    list_display = [
        "pk",
        "incident",
        "severity",
        "state",
        "escalation_level",
        "repeat",
        "escalate_at",
        "acknowledged_by",
        "acknowledged_at",
        "started_at",
    ]
    list_filter = ["state", "severity"]
    search_fields = ["=incident__number", "incident__title"]
    list_select_related = ["incident", "severity", "acknowledged_by"]
    readonly_fields = [f.name for f in Page._meta.fields]
    inlines = [NotificationInline]
    actions = ["acknowledge"]

    def get_queryset(self, request):
        # Restricted incidents stay hidden from staff who may not see them (the one visibility rule).
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Acknowledge the selected pages' incidents (stops escalation)")
    def acknowledge(self, request, queryset):
        done = 0
        for page in queryset.select_related("incident"):
            try:
                acknowledge_incident(incident=page.incident, by=request.user)
                done += 1
            except DomainError as error:
                self.message_user(request, f"{page.incident.reference}: {error.message}", messages.ERROR)
        if done:
            self.message_user(request, f"Acknowledged {done} incident(s).", messages.SUCCESS)


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyAdmin):
    list_display = ["fired_at", "incident", "kind", "due_at"]
    list_filter = ["kind"]
    list_select_related = ["incident"]

    def get_queryset(self, request):
        # Restricted incidents stay hidden from staff who may not see them (the one visibility rule).
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))


@admin.register(AcknowledgeLinkUse)
class AcknowledgeLinkUseAdmin(ReadOnlyAdmin):
    list_display = ["used_at", "notification"]

    def get_queryset(self, request):
        visible = Incident.objects.visible_to(request.user)
        return super().get_queryset(request).filter(notification__incident__in=visible)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "format", "url", "team", "is_active"]
    list_filter = ["format", "is_active"]
    search_fields = ["name", "url"]

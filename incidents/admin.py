from django.contrib import admin, messages

from . import services
from .errors import DomainError
from .models import (
    ChecklistItem,
    ChecklistTemplateItem,
    FiveWhys,
    Incident,
    IncidentResponder,
    IncidentRunbook,
    RoleAssignment,
    Runbook,
    RunbookStep,
    Service,
    SeverityPolicy,
    StatusUpdate,
    TimelineEntry,
)


def _duration(value):
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


@admin.register(SeverityPolicy)
class SeverityPolicyAdmin(admin.ModelAdmin):
    list_display = ["level", "name", "description", "impact", "response_target", "escalation_delay", "update_cadence"]
    ordering = ["rank"]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owning_team", "is_public"]
    list_filter = ["is_public", "owning_team"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}


class RoleAssignmentInline(admin.TabularInline):
    model = RoleAssignment
    extra = 0
    fields = ["role", "holder", "assigned_at", "assigned_by", "relieved_at"]
    readonly_fields = fields
    can_delete = False
    fk_name = "incident"

    def has_add_permission(self, request, obj=None):
        return False


class ChecklistItemInline(admin.TabularInline):
    model = ChecklistItem
    extra = 0
    fields = ["phase", "position", "text", "checked_at", "checked_by"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class TimelineEntryInline(admin.TabularInline):
    model = TimelineEntry
    extra = 0
    fields = ["occurred_at", "kind", "author", "body"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-occurred_at"]
    max_num = 0
    show_change_link = True

    def get_queryset(self, request):
        # The full timeline can be thousands of rows; the incident page shows all of it.
        return super().get_queryset(request).select_related("author")

    def has_add_permission(self, request, obj=None):
        return False


class ResponderInline(admin.TabularInline):
    model = IncidentResponder
    fk_name = "incident"
    extra = 0
    fields = ["user", "added_at", "added_by"]
    readonly_fields = ["added_at", "added_by"]
    autocomplete_fields = ["user"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["reference", "title", "severity", "status", "declared_at", "is_restricted", "ttr"]
    list_filter = ["severity", "status", "services", "is_restricted", "detection_source"]
    search_fields = ["title", "summary", "number"]
    date_hierarchy = "declared_at"
    list_select_related = ["severity"]
    filter_horizontal = ["services"]
    inlines = [RoleAssignmentInline, ResponderInline, ChecklistItemInline, TimelineEntryInline]
    actions = ["acknowledge", "mark_resolved"]
    readonly_fields = [
        "reference",
        "status",
        "severity",
        "declared_at",
        "acknowledged_at",
        "acknowledged_by",
        "identified_at",
        "mitigated_at",
        "resolved_at",
        "closed_at",
        "response_due_at",
        "next_update_due_at",
        "created_by",
        "time_to_detect_display",
        "time_to_acknowledge_display",
        "time_to_mitigate_display",
        "time_to_resolve_display",
    ]
    fieldsets = [
        (None, {"fields": ["reference", "title", "summary", "severity", "status", "is_restricted"]}),
        ("Impact", {"fields": ["detection_source", "services", "impact", "users_affected_percent"]}),
        (
            "Times",
            {
                "fields": [
                    "detected_at",
                    "declared_at",
                    "acknowledged_at",
                    "acknowledged_by",
                    "identified_at",
                    "mitigated_at",
                    "resolved_at",
                    "closed_at",
                    "response_due_at",
                    "next_update_due_at",
                    "created_by",
                ]
            },
        ),
        (
            "Durations",
            {
                "fields": [
                    "time_to_detect_display",
                    "time_to_acknowledge_display",
                    "time_to_mitigate_display",
                    "time_to_resolve_display",
                ]
            },
        ),
    ]

    def get_queryset(self, request):
        return Incident.objects.visible_to(request.user).select_related("severity")

    def has_add_permission(self, request):
        # Incidents are declared through the portal (declare_incident): numbering, checklists, roles, paging.
        return False

    @admin.display(description="Reference", ordering="number")
    def reference(self, obj):
        return obj.reference

    @admin.display(description="Time to resolve")
    def ttr(self, obj):
        return _duration(obj.time_to_resolve)

    @admin.display(description="Time to detect")
    def time_to_detect_display(self, obj):
        return _duration(obj.time_to_detect)

    @admin.display(description="Time to acknowledge")
    def time_to_acknowledge_display(self, obj):
        return _duration(obj.time_to_acknowledge)

    @admin.display(description="Time to mitigate")
    def time_to_mitigate_display(self, obj):
        return _duration(obj.time_to_mitigate)

    @admin.display(description="Time to resolve")
    def time_to_resolve_display(self, obj):
        return _duration(obj.time_to_resolve)

    def _run(self, request, queryset, func, done):
        count = 0
        for incident in queryset:
            try:
                func(incident)
                count += 1
            except DomainError as error:
                self.message_user(request, f"{incident.reference}: {error.message}", level=messages.ERROR)
        if count:
            self.message_user(request, f"{done} {count} incident(s).", level=messages.SUCCESS)

    @admin.action(description="Acknowledge selected incidents")
    def acknowledge(self, request, queryset):
        self._run(
            request, queryset, lambda i: services.acknowledge_incident(incident=i, by=request.user), "Acknowledged"
        )

    @admin.action(description="Mark selected incidents resolved")
    def mark_resolved(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda i: services.change_status(
                incident=i, to="resolved", by=request.user, note="Resolved from the admin."
            ),
            "Resolved",
        )


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    list_display = ["incident", "occurred_at", "kind", "author", "is_key_event"]
    list_filter = ["kind", "is_key_event"]
    search_fields = ["body"]
    list_select_related = ["incident", "author"]
    readonly_fields = ["incident", "occurred_at", "created_at", "author", "kind", "body", "body_html"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ChecklistTemplateItem)
class ChecklistTemplateItemAdmin(admin.ModelAdmin):
    list_display = ["phase", "position", "text", "is_active"]
    list_filter = ["phase", "is_active"]
    list_editable = ["is_active"]
    search_fields = ["text"]


class RunbookStepInline(admin.TabularInline):
    model = RunbookStep
    extra = 1


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = ["title", "suggested_severity", "updated_at"]
    search_fields = ["title", "summary"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [RunbookStepInline]


@admin.register(IncidentRunbook)
class IncidentRunbookAdmin(admin.ModelAdmin):
    list_display = ["incident", "runbook", "attached_at", "attached_by"]
    list_filter = ["runbook"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))


@admin.register(FiveWhys)
class FiveWhysAdmin(admin.ModelAdmin):
    list_display = ["incident", "problem", "root_cause", "updated_at"]
    search_fields = ["problem", "root_cause"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))


@admin.register(StatusUpdate)
class StatusUpdateAdmin(admin.ModelAdmin):
    list_display = ["incident", "kind", "status", "title", "posted_at", "is_published"]
    list_filter = ["kind", "status", "is_published"]
    search_fields = ["title", "description", "what_we_know"]
    list_select_related = ["incident"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))

    def has_add_permission(self, request):
        return False

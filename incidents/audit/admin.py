from django.contrib import admin
from django.utils.html import format_html

from incidents import access
from incidents.interface import ReadOnlyAdmin
from incidents.models import Incident

from .access import can_view_audit
from .filters import object_type_choices
from .models import AuditRecord, EvidenceExport
from .selectors import audit_records_for
from .templatetags.audit_tags import pretty_json


class ObjectTypeFilter(admin.SimpleListFilter):
    title = "model"
    parameter_name = "object_type"

    def lookups(self, request, model_admin):
        return object_type_choices()

    def queryset(self, request, queryset):
        return queryset.filter(object_type=self.value()) if self.value() else queryset


class AuditAdmin(ReadOnlyAdmin):
    """Append-only data: viewable by admins and the security team, never added, changed or deleted here."""

    def has_view_permission(self, request, obj=None):
        return can_view_audit(request.user)

    def has_module_permission(self, request):
        return can_view_audit(request.user)


@admin.register(AuditRecord)
class AuditRecordAdmin(AuditAdmin):
    list_display = ["occurred_at", "actor_display", "action", "object_type", "object_id", "object_repr", "source"]
    list_filter = [
        "action",
        ObjectTypeFilter,
        ("actor", admin.RelatedOnlyFieldListFilter),
        "source",
        ("occurred_at", admin.DateFieldListFilter),
    ]
    search_fields = ["object_repr", "object_id", "actor_username", "request_id", "client_request_id"]
    date_hierarchy = "occurred_at"
    list_select_related = ["actor"]
    show_full_result_count = False
    fields = [
        "occurred_at",
        "actor",
        "actor_username",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "field",
        "incident_id",
        "before_display",
        "after_display",
        "source",
        "request_id",
        "client_request_id",
        "ip_address",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return audit_records_for(user=request.user)

    @admin.display(description="Who", ordering="actor_username")
    def actor_display(self, obj):
        return obj.actor_display

    @admin.display(description="Before")
    def before_display(self, obj):
        return format_html("<pre>{}</pre>", pretty_json(obj.before))

    @admin.display(description="After")
    def after_display(self, obj):
        return format_html("<pre>{}</pre>", pretty_json(obj.after))


@admin.register(EvidenceExport)
class EvidenceExportAdmin(AuditAdmin):
    list_display = ["incident_reference", "created_at", "created_by_username", "manifest_sha256", "size"]
    search_fields = ["incident_reference", "manifest_sha256", "created_by_username"]
    fields = ["incident_reference", "incident_id", "created_at", "created_by_username", "manifest_sha256", "size"]
    readonly_fields = fields

    def get_queryset(self, request):
        exports = super().get_queryset(request).defer("content")
        if access.is_security(request.user):
            return exports
        return exports.filter(incident_id__in=Incident.objects.visible_to(request.user).values("pk"))

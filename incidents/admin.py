"""The Django admin for managers: the guide's data (severity policy, checklists, runbooks, services) is edited
here directly; incidents change only through incidents.services.

On an incident's change page, status, severity, roles, responders and runbooks are read-only fields with
companion "change" inputs; the descriptive fields (title, summary, services, restriction, detection) are saved by
update_incident_details. The form (admin_forms.py) asks each service's check_* function in clean() (they write
nothing), so a refused change (a DomainError) becomes an error on the field at fault and nothing is saved;
save_model then makes the changes through the services. Bulk actions call the same services and report each
refusal as an error message. Timeline entries, status updates and five whys are history: read-only here.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes import views as contenttype_views
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpResponseRedirect

from .admin_forms import IncidentAdminForm, apply_requested_changes
from .errors import DomainError
from .interface import ReadOnlyAdmin, ReadOnlyInline, run_admin_action
from .models import (
    ChecklistItem,
    ChecklistPhase,
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
    Status,
    StatusUpdate,
    TimelineEntry,
)
from .selectors import parse_reference
from .services import status as status_services
from .templatetags.incident_tags import duration


def _duration(value):
    # The same wording as the incident pages; a dash where there is nothing yet.
    return duration(value) or "-"


class VisibleIncidentsMixin:
    """Rows that belong to an incident are shown only when the incident is visible to the user."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))


# --- configuration: the guide as data ----------------------------------------------------------------------


@admin.register(SeverityPolicy)
class SeverityPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "level",
        "name",
        "description",
        "impact",
        "response_target_display",
        "escalation_delay",
        "update_cadence",
        "pages_out_of_hours",
    ]
    ordering = ["rank"]

    def has_delete_permission(self, request, obj=None):
        # Incidents point at their severity (PROTECT); the four levels are the guide's table.
        return False

    @admin.display(description="Response target")
    def response_target_display(self, obj):
        return "Next business day" if obj.response_next_business_day else _duration(obj.response_target)


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owning_team", "is_public", "health_check_url"]
    list_filter = ["is_public", "owning_team"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = ["owning_team"]
    # Health checks are https unless a scheme is typed (Django 6's default, without the deprecation warning).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


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
    list_display = ["title", "suggested_severity", "step_count", "updated_at"]
    search_fields = ["title", "summary"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [RunbookStepInline]
    list_select_related = ["suggested_severity"]

    @admin.display(description="Steps")
    def step_count(self, obj):
        return obj.steps.count()


# --- incidents ---------------------------------------------------------------------------------------------


class RoleAssignmentInline(ReadOnlyInline):
    model = RoleAssignment
    fields = ["role", "holder", "assigned_at", "assigned_by", "relieved_at"]
    fk_name = "incident"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("holder", "assigned_by")


class ResponderInline(ReadOnlyInline):
    model = IncidentResponder
    fk_name = "incident"
    fields = ["user", "added_at", "added_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "added_by")


class ChecklistItemInline(ReadOnlyInline):
    model = ChecklistItem
    fields = ["phase", "position", "text", "checked_at", "checked_by"]

    def get_queryset(self, request):
        # In the guide's order (triage, detection, response, ...), not alphabetically by phase.
        phase_order = Case(
            *(When(phase=phase, then=Value(index)) for index, phase in enumerate(ChecklistPhase.values)),
            output_field=IntegerField(),
        )
        return (
            super()
            .get_queryset(request)
            .select_related("checked_by", "runbook")
            .order_by(phase_order, "runbook_id", "position")
        )


class TimelineEntryInline(ReadOnlyInline):
    model = TimelineEntry
    fields = ["occurred_at", "event_type", "author", "body"]
    ordering = ["-occurred_at", "-id"]
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    form = IncidentAdminForm
    list_display = [
        "reference",
        "title",
        "severity",
        "status",
        "declared_at",
        "is_restricted",
        "time_to_acknowledge_display",
        "time_to_resolve_display",
    ]
    list_filter = ["severity", "status", "services", "is_restricted", "detection_source"]
    search_fields = ["title", "summary"]
    date_hierarchy = "declared_at"
    list_select_related = ["severity"]
    filter_horizontal = ["services"]
    inlines = [RoleAssignmentInline, ResponderInline, ChecklistItemInline, TimelineEntryInline]
    actions = [
        "acknowledge",
        "mark_identified",
        "mark_monitoring",
        "mark_resolved",
        "mark_closed",
        "reopen",
    ]
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
        "response_target_breached",
    ]
    fieldsets = [
        (None, {"fields": ["reference", "title", "summary", "severity", "status", "is_restricted"]}),
        (
            "Change (through the incident rules)",
            {
                "fields": [
                    ("new_status", "status_note"),
                    "override_reason",
                    ("new_severity", "severity_reason"),
                    ("assign_role", "role_holder"),
                    "add_responder",
                    "attach_runbook",
                ]
            },
        ),
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
                    "response_target_breached",
                ]
            },
        ),
    ]

    def get_queryset(self, request):
        return Incident.objects.visible_to(request.user).select_related("severity", "created_by", "acknowledged_by")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request_user": request.user})

    def get_search_results(self, request, queryset, search_term):
        # "INC-42" (or "42") finds the incident by its reference as well as by words in its title.
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        number = parse_reference(search_term)
        if number is not None:
            queryset |= self.get_queryset(request).filter(number=number)
        return queryset, may_have_duplicates

    def save_model(self, request, obj, form, change):
        # Every field of the form goes through the services (details, severity, roles, runbooks, status), each
        # locking the incident and writing its timeline entry. The form's clean() asked the same services; a
        # refusal here means someone else changed the incident in between: nothing of this save stays.
        try:
            with transaction.atomic():
                apply_requested_changes(obj, by=request.user, cleaned=form.cleaned_data)
        except DomainError as error:  # the savepoint above rolled back every change of this save
            request._incident_admin_refused = error.message
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        # Not form.save_m2m(): the incident's services were set by update_incident_details. The inlines are
        # read-only history.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def response_change(self, request, obj):
        refused = getattr(request, "_incident_admin_refused", None)
        if refused:
            self.message_user(request, f"Nothing was saved: {refused}", level=messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def log_change(self, request, obj, message):
        if getattr(request, "_incident_admin_refused", None):
            return None
        return super().log_change(request, obj, message)

    def has_add_permission(self, request):
        # Incidents are declared through the portal (declare_incident): numbering, checklists, roles, paging.
        return False

    def has_delete_permission(self, request, obj=None):
        # An incident is history (timeline, post-mortem, metrics); close it instead.
        return False

    @admin.display(description="Reference", ordering="number")
    def reference(self, obj):
        return obj.reference

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

    @admin.display(description="Response target missed", boolean=True)
    def response_target_breached(self, obj):
        return obj.response_target_breached

    def _run(self, request, queryset, func, done):
        run_admin_action(
            self,
            request,
            queryset,
            func,
            done=lambda count: f"{done} {count} incident(s).",
            label=lambda incident: incident.reference,
        )

    def _to(self, request, queryset, status, done):
        self._run(
            request,
            queryset,
            lambda incident: status_services.change_status(
                incident=incident, to=status, by=request.user, note="Changed from the admin."
            ),
            done,
        )

    @admin.action(description="Acknowledge selected incidents")
    def acknowledge(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda incident: status_services.acknowledge_incident(incident=incident, by=request.user),
            "Acknowledged",
        )

    @admin.action(description="Mark selected incidents Identified")
    def mark_identified(self, request, queryset):
        self._to(request, queryset, Status.IDENTIFIED, "Marked identified:")

    @admin.action(description="Mark selected incidents Monitoring")
    def mark_monitoring(self, request, queryset):
        self._to(request, queryset, Status.MONITORING, "Marked monitoring:")

    @admin.action(description="Mark selected incidents Resolved")
    def mark_resolved(self, request, queryset):
        self._to(request, queryset, Status.RESOLVED, "Resolved")

    @admin.action(description="Close selected incidents (closure checklist must be complete)")
    def mark_closed(self, request, queryset):
        self._to(request, queryset, Status.CLOSED, "Closed")

    @admin.action(description="Re-open selected incidents (back to Investigating)")
    def reopen(self, request, queryset):
        self._to(request, queryset, Status.INVESTIGATING, "Re-opened")


# --- history around an incident: read-only ------------------------------------------------------------------


@admin.register(TimelineEntry)
class TimelineEntryAdmin(VisibleIncidentsMixin, ReadOnlyAdmin):
    list_display = ["incident", "occurred_at", "event_type", "author", "is_key_event"]
    list_filter = ["kind", "event_type", "is_key_event"]
    search_fields = ["body"]
    list_select_related = ["incident", "author"]
    fields = [
        "incident",
        "occurred_at",
        "created_at",
        "author",
        "kind",
        "event_type",
        "data",
        "is_key_event",
        "body",
        "body_html",
    ]
    readonly_fields = fields


@admin.register(IncidentRunbook)
class IncidentRunbookAdmin(VisibleIncidentsMixin, ReadOnlyAdmin):
    list_display = ["incident", "runbook", "attached_at", "attached_by"]
    list_filter = ["runbook"]
    list_select_related = ["incident", "runbook", "attached_by"]


@admin.register(FiveWhys)
class FiveWhysAdmin(VisibleIncidentsMixin, ReadOnlyAdmin):
    list_display = ["incident", "problem", "root_cause", "updated_at"]
    search_fields = ["problem", "root_cause"]
    list_select_related = ["incident"]


@admin.register(StatusUpdate)
class StatusUpdateAdmin(VisibleIncidentsMixin, ReadOnlyAdmin):
    list_display = ["incident", "kind", "status", "title", "posted_at", "is_published"]
    list_filter = ["kind", "status", "is_published"]
    search_fields = ["title", "description", "what_we_know"]
    list_select_related = ["incident"]


def view_on_site(request, content_type_id, object_id):
    """The admin's "view on site" redirect (/admin/r/<content type>/<id>/), through the model's admin queryset:
    an object the user may not see (a restricted incident, or a row of one) gets the same 404 as a missing one.
    Django's own version looks the object up directly, so it redirected for hidden objects and 404'd only for
    missing ones. Models not in the admin are not redirected at all."""
    try:
        content_type = ContentType.objects.get_for_id(int(content_type_id))
    except (ValueError, ContentType.DoesNotExist):
        raise Http404 from None
    model_admin = admin.site._registry.get(content_type.model_class())
    if model_admin is None or not model_admin.has_view_or_change_permission(request):
        raise Http404
    if model_admin.get_object(request, unquote(object_id)) is None:
        raise Http404
    return contenttype_views.shortcut(request, content_type_id, object_id)

"""The Django admin for managers: the guide's data (severity policy, checklists, runbooks, services) is edited
here directly; incidents change only through incidents.services.

On an incident's change page, status, severity, roles, responders and runbooks are read-only fields with
companion "change" inputs; the descriptive fields (title, summary, services, restriction, detection) are saved by
update_incident_details. The form's clean() asks each service's check_* function (they write nothing), so a
refused change (a DomainError) becomes an error on the field at fault and nothing is saved; save_model then makes
the changes through the services. Bulk actions call the same services and report
each refusal as an error message. Timeline entries, status updates and five whys are history: read-only here.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.contenttypes import views as contenttype_views
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpResponseRedirect

from .errors import DomainError
from .models import (
    ChecklistItem,
    ChecklistPhase,
    ChecklistTemplateItem,
    FiveWhys,
    Incident,
    IncidentResponder,
    IncidentRunbook,
    Role,
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
from .services import checklist as checklist_services
from .services import details as details_services
from .services import roles as roles_services
from .services import status as status_services
from .templatetags.incident_tags import duration


def _duration(value):
    # The same wording as the incident pages; a dash where there is nothing yet.
    return duration(value) or "-"


class ReadOnlyAdminMixin:
    """History: viewable by whoever may view it, never added, edited or deleted through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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


class RoleAssignmentInline(admin.TabularInline):
    model = RoleAssignment
    extra = 0
    fields = ["role", "holder", "assigned_at", "assigned_by", "relieved_at"]
    readonly_fields = fields
    can_delete = False
    fk_name = "incident"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("holder", "assigned_by")


class ResponderInline(admin.TabularInline):
    model = IncidentResponder
    fk_name = "incident"
    extra = 0
    fields = ["user", "added_at", "added_by"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "added_by")


class ChecklistItemInline(admin.TabularInline):
    model = ChecklistItem
    extra = 0
    fields = ["phase", "position", "text", "checked_at", "checked_by"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

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


class TimelineEntryInline(admin.TabularInline):
    model = TimelineEntry
    extra = 0
    fields = ["occurred_at", "event_type", "author", "body"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-occurred_at", "-id"]
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class IncidentAdminForm(forms.ModelForm):
    """The incident's own descriptive fields, plus inputs for the changes that must go through services."""

    new_status = forms.ChoiceField(
        label="Change status to", required=False, choices=[("", "(keep)")] + list(Status.choices)
    )
    status_note = forms.CharField(
        label="Note for the timeline", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    override_reason = forms.CharField(
        label="Closure override reason",
        required=False,
        help_text="Managers only: closes the incident although the closure checklist is incomplete.",
    )
    new_severity = forms.ModelChoiceField(
        label="Change severity to", required=False, queryset=SeverityPolicy.objects.order_by("rank")
    )
    severity_reason = forms.CharField(label="Why the severity changes", required=False)
    assign_role = forms.ChoiceField(label="Assign role", required=False, choices=[("", "(none)")] + list(Role.choices))
    role_holder = forms.ModelChoiceField(
        label="to", required=False, queryset=get_user_model().objects.filter(is_active=True).order_by("username")
    )
    add_responder = forms.ModelChoiceField(
        label="Add responder",
        required=False,
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
    )
    attach_runbook = forms.ModelChoiceField(label="Attach runbook", required=False, queryset=Runbook.objects.all())

    class Meta:
        model = Incident
        fields = [
            "title",
            "summary",
            "is_restricted",
            "detection_source",
            "services",
            "impact",
            "users_affected_percent",
            "detected_at",
        ]

    # Set by IncidentAdmin.get_form: the user acting, for the services.
    request_user = None

    # DomainError.field -> the input it belongs to on this form.
    FIELD_FOR_ERROR = {
        "status": "new_status",
        "reason": "severity_reason",
        "severity": "new_severity",
        "role": "assign_role",
        "holder": "role_holder",
        "runbook": "attach_runbook",
        **{name: name for name in details_services.DETAIL_FIELDS},
    }

    def clean(self):
        """Ask the services whether they would accept each requested change. Nothing is written here: the
        changes are made by IncidentAdmin.save_model through the same services, once everything is valid."""
        cleaned = super().clean()
        if self.errors or self.instance.pk is None:
            return cleaned
        # The stored row: the ModelForm copies the typed values onto self.instance after clean().
        incident = Incident.objects.select_related("severity").get(pk=self.instance.pk)
        try:
            check_requested_changes(incident, by=self.request_user, cleaned=cleaned)
        except DomainError as error:
            self.add_error(self.FIELD_FOR_ERROR.get(error.field), error.message)
        return cleaned


def _detail_values(cleaned) -> dict:
    return {
        "title": cleaned.get("title"),
        "summary": cleaned.get("summary"),
        "impact": cleaned.get("impact"),
        "services": list(cleaned.get("services") or ()),
        "restricted": cleaned.get("is_restricted"),
        "detected_at": cleaned.get("detected_at"),
        "detection_source": cleaned.get("detection_source"),
        "users_affected_percent": cleaned.get("users_affected_percent"),
    }


def check_requested_changes(incident: Incident, *, by, cleaned) -> None:
    """Every change the form asks for, checked by the service that would make it; raises DomainError."""
    details_services.check_details_change(incident, by=by, **_detail_values(cleaned))
    if cleaned.get("new_severity"):
        status_services.check_severity_change(
            incident, severity=cleaned["new_severity"], by=by, reason=cleaned.get("severity_reason", "")
        )
    elif cleaned.get("severity_reason"):
        raise DomainError("Choose the new severity, or leave the reason empty.", field="severity")
    if cleaned.get("assign_role"):
        roles_services.check_role_assignment(
            incident, role=cleaned["assign_role"], holder=cleaned.get("role_holder"), by=by
        )
    elif cleaned.get("role_holder"):
        raise DomainError("Choose the role to assign.", field="role")
    if cleaned.get("attach_runbook"):
        checklist_services.check_runbook_attachment(incident, runbook=cleaned["attach_runbook"])
    if cleaned.get("new_status"):
        status_services.check_status_change(
            incident, to=cleaned["new_status"], by=by, override_reason=cleaned.get("override_reason", "")
        )


def apply_requested_changes(incident: Incident, *, by, cleaned) -> None:
    """The changes the form asked for, each through its service, in the order the checks assumed."""
    details_services.update_incident_details(incident=incident, by=by, **_detail_values(cleaned))
    if cleaned.get("new_severity"):
        status_services.change_severity(
            incident=incident, severity=cleaned["new_severity"], by=by, reason=cleaned.get("severity_reason", "")
        )
    if cleaned.get("assign_role"):
        roles_services.assign_role(
            incident=incident, role=cleaned["assign_role"], holder=cleaned.get("role_holder"), by=by
        )
    if cleaned.get("add_responder"):
        roles_services.add_responder(incident=incident, user=cleaned["add_responder"], by=by)
    if cleaned.get("attach_runbook"):
        checklist_services.attach_runbook(incident=incident, runbook=cleaned["attach_runbook"], by=by)
    if cleaned.get("new_status"):
        status_services.change_status(
            incident=incident,
            to=cleaned["new_status"],
            by=by,
            note=cleaned.get("status_note", ""),
            override_reason=cleaned.get("override_reason", ""),
        )


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
        count = 0
        for incident in queryset:
            try:
                func(incident)
                count += 1
            except DomainError as error:
                self.message_user(request, f"{incident.reference}: {error.message}", level=messages.ERROR)
        if count:
            self.message_user(request, f"{done} {count} incident(s).", level=messages.SUCCESS)

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
class TimelineEntryAdmin(VisibleIncidentsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
class IncidentRunbookAdmin(VisibleIncidentsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["incident", "runbook", "attached_at", "attached_by"]
    list_filter = ["runbook"]
    list_select_related = ["incident", "runbook", "attached_by"]


@admin.register(FiveWhys)
class FiveWhysAdmin(VisibleIncidentsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["incident", "problem", "root_cause", "updated_at"]
    search_fields = ["problem", "root_cause"]
    list_select_related = ["incident"]


@admin.register(StatusUpdate)
class StatusUpdateAdmin(VisibleIncidentsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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

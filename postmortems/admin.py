"""Admin for post-mortems and action items. Statuses are read-only here: they change through admin actions that
call the same services as the pages, and a DomainError becomes a form error or an error message, never a quiet
partial save. Post-mortems are drafted by resolving an incident, so they cannot be added by hand."""

from django import forms
from django.contrib import admin
from django.utils import timezone

from incidents.errors import DomainError
from incidents.interface import ReadOnlyInline, run_admin_action
from incidents.models import Incident

from .models import (
    MARKDOWN_SECTIONS,
    ActionItem,
    ActionItemStatus,
    PostMortem,
    PostMortemStatus,
    PostMortemTimelineItem,
)
from .services import publishing as publishing_services
from .services.action_items import add_action_item, change_action_item_status, update_action_item
from .services.editing import EDITABLE_TEXT_FIELDS, assign_owner, update_content


class ActionItemInline(ReadOnlyInline):
    model = ActionItem
    fk_name = "postmortem"
    fields = ["title", "owner", "due_date", "priority", "kind", "status"]
    show_change_link = True


class TimelineItemInline(ReadOnlyInline):
    model = PostMortemTimelineItem
    fields = ["occurred_at", "text", "is_included"]
    classes = ["collapse"]


@admin.register(PostMortem)
class PostMortemAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "incident_reference",
        "severity",
        "status",
        "owner",
        "due_at",
        "meeting_at",
        "published_at",
    ]
    list_filter = ["status", "incident__severity", ("meeting_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["title", "incident__title", "=incident__number"]
    list_select_related = ["incident", "incident__severity", "owner"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        # Restricted incidents stay hidden from staff who may not see them (the one visibility rule).
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))

    readonly_fields = [
        "incident",
        "status",
        "due_at",
        "meeting_at",
        "meeting_location",
        "published_at",
        "published_by",
        "report_sent_at",
        "schedule_reminded_at",
        "created_at",
        "updated_at",
    ]
    fields = (
        [
            "incident",
            "status",
            "title",
            "owner",
            "due_at",
            "meeting_at",
            "meeting_location",
            "users_affected",
            "revenue_impact",
        ]
        + [name for name, _ in MARKDOWN_SECTIONS]
        + ["published_at", "published_by", "report_sent_at", "schedule_reminded_at", "created_at", "updated_at"]
    )
    inlines = [ActionItemInline, TimelineItemInline]
    actions = ["send_for_review", "publish", "resend_report"]

    @admin.display(description="incident", ordering="incident__number")
    def incident_reference(self, obj):
        return obj.incident.reference

    @admin.display(description="severity", ordering="incident__severity__rank")
    def severity(self, obj):
        return obj.incident.severity.level

    def has_add_permission(self, request):
        return False  # drafted when the incident is resolved

    def save_model(self, request, obj, form, change):
        pass  # the form's clean() already saved through the services (in the admin view's transaction)

    def save_related(self, request, form, formsets, change):
        # The inlines are read-only: saving their formsets writes nothing, but the admin's change message reads
        # what they saved (a bare `pass` made every change page POST with its inlines a 500).
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class ServiceForm(form):
            """Saves through the services inside clean(), so a refusal is an error on the right field and
            nothing is half-saved (the admin view runs in one transaction)."""

            def clean(self):
                data = super().clean()
                if self.errors or not self.instance.pk:
                    return data
                content = {name: data[name] for name in self.changed_data if name in EDITABLE_TEXT_FIELDS}
                try:
                    if content:
                        update_content(postmortem=self.instance, by=request.user, **content)
                    if "owner" in self.changed_data:
                        assign_owner(postmortem=self.instance, owner=data.get("owner"), by=request.user)
                except DomainError as error:
                    self.add_error(error.field if error.field in self.fields else None, error.message)
                return data

        return ServiceForm

    @admin.action(description="Send for review")
    def send_for_review(self, request, queryset):
        run_admin_action(
            self,
            request,
            queryset,
            lambda pm: publishing_services.change_postmortem_status(
                postmortem=pm, to=PostMortemStatus.IN_REVIEW, by=request.user
            ),
            done=lambda count: f"{count} sent for review.",
        )

    @admin.action(description="Publish and email the report")
    def publish(self, request, queryset):
        run_admin_action(
            self,
            request,
            queryset,
            lambda pm: publishing_services.change_postmortem_status(
                postmortem=pm, to=PostMortemStatus.PUBLISHED, by=request.user
            ),
            done=lambda count: f"{count} published.",
        )

    @admin.action(description="Re-send the report")
    def resend_report(self, request, queryset):
        run_admin_action(
            self,
            request,
            queryset,
            lambda pm: publishing_services.resend_report(postmortem=pm, by=request.user),
            done=lambda count: f"{count} reports queued.",
        )


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request, queryset):
        overdue = ActionItem.objects.overdue(timezone.localdate()).values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=overdue)
        if self.value() == "no":
            return queryset.exclude(pk__in=overdue)
        return queryset


class ActionItemAdminForm(forms.ModelForm):
    class Meta:
        model = ActionItem
        fields = ["postmortem", "title", "description", "owner", "due_date", "priority", "kind"]


@admin.register(ActionItem)
class ActionItemAdmin(admin.ModelAdmin):
    form = ActionItemAdminForm
    list_display = ["title", "incident_reference", "owner", "due_date", "priority", "kind", "status", "is_overdue"]
    list_filter = ["status", OverdueFilter, "priority", "kind", "due_date", "incident__severity"]
    search_fields = [
        "title",
        "description",
        "owner__username",
        "owner__first_name",
        "owner__last_name",
        "=incident__number",
    ]
    list_select_related = ["incident", "owner"]
    raw_id_fields = ["postmortem"]

    def get_queryset(self, request):
        # Restricted incidents stay hidden from staff who may not see them (the one visibility rule).
        return super().get_queryset(request).filter(incident__in=Incident.objects.visible_to(request.user))

    readonly_fields = [
        "incident",
        "status",
        "owner_person",
        "created_at",
        "created_by",
        "completed_at",
        "reminded_before_at",
        "reminded_overdue_at",
    ]
    actions = ["mark_in_progress", "mark_done", "mark_wont_do", "reopen"]

    def get_fields(self, request, obj=None):
        base = ["postmortem", "title", "description", "owner", "due_date", "priority", "kind"]
        return base if obj is None else base + self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["postmortem"] if obj is not None else [])

    @admin.display(description="incident", ordering="incident__number")
    def incident_reference(self, obj):
        return obj.incident.reference

    @admin.display(boolean=True, description="overdue")
    def is_overdue(self, obj):
        return obj.is_overdue

    def save_model(self, request, obj, form, change):
        obj.pk = form.saved_item.pk  # saved through the services by the form's clean()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class ServiceForm(form):
            """Saves through the services inside clean(), so a refusal is an error on the right field and
            nothing is half-saved (the admin view runs in one transaction)."""

            saved_item = None

            def clean(self):
                data = super().clean()
                if self.errors:
                    return data
                fields = {name: data.get(name) for name in ("title", "owner", "due_date", "priority", "kind")}
                try:
                    if self.instance.pk:
                        self.saved_item = update_action_item(
                            item=self.instance, by=request.user, description=data.get("description", ""), **fields
                        )
                    else:
                        self.saved_item = add_action_item(
                            postmortem=data["postmortem"],
                            by=request.user,
                            description=data.get("description", ""),
                            **fields,
                        )
                except DomainError as error:
                    self.add_error(error.field if error.field in self.fields else None, error.message)
                return data

        return ServiceForm

    def _set(self, request, queryset, status, done):
        run_admin_action(
            self,
            request,
            queryset,
            lambda item: change_action_item_status(item=item, to=status, by=request.user),
            done=lambda count: f"{count} {done}.",
        )

    @admin.action(description="Mark in progress")
    def mark_in_progress(self, request, queryset):
        self._set(request, queryset, ActionItemStatus.IN_PROGRESS, "marked in progress")

    @admin.action(description="Mark done")
    def mark_done(self, request, queryset):
        self._set(request, queryset, ActionItemStatus.DONE, "marked done")

    @admin.action(description="Mark won't do")
    def mark_wont_do(self, request, queryset):
        self._set(request, queryset, ActionItemStatus.WONT_DO, "marked won't do")

    @admin.action(description="Re-open")
    def reopen(self, request, queryset):
        self._set(request, queryset, ActionItemStatus.OPEN, "re-opened")

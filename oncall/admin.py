"""Admin for managers: the directory, rotations with ordered members and overrides (with a 4-week shift preview),
and escalation policies with ordered levels (with the planned schedule per severity). Model validation
(clean) runs in every admin form, so bad input is a form error, never a 500."""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Case, Count, Value, When
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from incidents.errors import DomainError
from incidents.models import SeverityPolicy

from . import selectors, services
from .escalation import plan_escalation
from .models import (
    CalendarFeed,
    ContactMethod,
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    Hotline,
    NotificationRule,
    Override,
    Person,
    ResponseRoleDefault,
    Rotation,
    RotationMember,
    Slot,
    Team,
    Vendor,
)
from .paging.selectors import channel_warning as paging_channel_warning


class OrderedRowForm(forms.ModelForm):
    """Inline rows keep the order they are entered in unless a position is typed (no duplicate-0 errors)."""

    position = forms.IntegerField(
        required=False, min_value=0, help_text="Order; leave empty to use the row order (0 comes first)."
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("position") is None and self.prefix and self.prefix.rsplit("-", 1)[-1].isdigit():
            cleaned["position"] = int(self.prefix.rsplit("-", 1)[-1])
        return cleaned


class ContactMethodInline(admin.TabularInline):
    model = ContactMethod
    form = OrderedRowForm
    extra = 0
    fields = ["position", "channel", "address", "is_active"]
    ordering = ["position"]


class NotificationRuleInline(admin.TabularInline):
    """ "N minutes after I am paged, notify me by METHOD": every rule fires unless the page is acknowledged first.
    A new person gets the default rules when saved without any."""

    model = NotificationRule
    extra = 0
    fields = ["delay_minutes", "contact_method"]
    ordering = ["delay_minutes", "pk"]
    verbose_name_plural = "notification rules (when and how this person is paged)"

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        field = formset.form.base_fields.get("contact_method")
        if field is not None:
            # The person's own saved methods only (a method added on this form can get a rule after saving).
            field.queryset = (
                ContactMethod.objects.filter(person=obj) if obj is not None else ContactMethod.objects.none()
            )
        return formset


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "phone", "timezone", "user", "vendor", "is_active"]
    list_filter = ["is_active", "timezone", "vendor", "teams"]
    search_fields = ["name", "email", "phone", "chat_handle", "user__username"]
    list_select_related = ["user", "vendor"]
    inlines = [ContactMethodInline, NotificationRuleInline]
    actions = ["rotate_calendar_links"]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not form.instance.notification_rules.exists():
            services.seed_default_notification_rules(person=form.instance)

    def render_change_form(self, request, context, *args, **kwargs):
        warning = paging_channel_warning()
        if warning:
            self.message_user(request, warning, messages.WARNING)
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.action(description="Rotate calendar feed links (old links stop working)")
    def rotate_calendar_links(self, request, queryset):
        for person in queryset:
            try:
                services.rotate_calendar_token(person=person, by=request.user)
            except DomainError as error:
                self.message_user(request, f"{person}: {error.message}", messages.ERROR)
                return
        self.message_user(request, f"New calendar links for {queryset.count()} people.")


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "team_lead", "member_count"]
    search_fields = ["name", "members__name"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]
    list_select_related = ["team_lead"]
    readonly_fields = ["owned_services"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("members", distinct=True))

    @admin.display(description="members", ordering="_member_count")
    def member_count(self, obj):
        return obj._member_count

    @admin.display(description="services owned")
    def owned_services(self, obj):
        if not obj.pk:
            return "—"
        return ", ".join(service.name for service in obj.services.all()) or "None (set Service.owning_team)"


class VendorContactInline(admin.TabularInline):
    model = Person
    fk_name = "vendor"
    extra = 0
    fields = ["name", "email", "phone", "timezone", "is_active"]
    verbose_name = "vendor contact"
    verbose_name_plural = "vendor contacts"


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = ["name", "support_email", "support_url", "phone", "account_reference"]
    search_fields = ["name", "account_reference", "notes"]
    list_filter = ["services"]
    filter_horizontal = ["services"]
    inlines = [VendorContactInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(Hotline)
class HotlineAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "phone", "person", "email", "position"]
    list_filter = ["kind"]
    search_fields = ["name", "description", "phone", "person__name"]
    list_select_related = ["person"]
    autocomplete_fields = ["person"]


@admin.register(ResponseRoleDefault)
class ResponseRoleDefaultAdmin(admin.ModelAdmin):
    list_display = ["role", "primary", "backup", "primary_slot", "primary_hotline", "backup_hotline"]
    list_select_related = ["primary_hotline", "backup_hotline"]


class RotationMemberInline(admin.TabularInline):
    model = RotationMember
    form = OrderedRowForm
    extra = 0
    fields = ["slot", "position", "person"]
    autocomplete_fields = ["person"]

    def get_queryset(self, request):
        # The guide's column order: Primary, Secondary, Incident Commander.
        order = Case(*[When(slot=slot, then=Value(i)) for i, slot in enumerate(Slot.values)])
        return super().get_queryset(request).order_by(order, "position", "pk")


class OverrideForm(forms.ModelForm):
    """Asks create_override's rules (who may cover for whom, a storable window) while validating; the admin then
    saves through create_override / change_override, and deletes through cancel_override."""

    # Set by the admin's get_form / get_formset: the user acting, for the rules.
    request_user = None

    class Meta:
        model = Override
        fields = ["rotation", "slot", "person", "start", "end", "reason"]

    def clean(self):
        cleaned = super().clean()
        person, start, end = cleaned.get("person"), cleaned.get("start"), cleaned.get("end")
        try:
            if self.instance.pk and not services.can_override_for(self.request_user, self.instance.person):
                raise DomainError("Only a manager or the person covering can change or cancel this override.")
            if self.errors or person is None or start is None or end is None or cleaned.get("DELETE"):
                return cleaned
            services.check_override(by=self.request_user, person=person, start=start, end=end)
        except DomainError as error:
            self.add_error(error.field if error.field in self.fields else None, error.message)
        return cleaned


def _save_override(request, form, override: Override) -> Override:
    data = form.cleaned_data
    fields = {
        "slot": data["slot"],
        "person": data["person"],
        "start": data["start"],
        "end": data["end"],
        "reason": data.get("reason", ""),
    }
    if override.pk:
        return services.change_override(override=override, by=request.user, **fields)
    saved = services.create_override(rotation=override.rotation, by=request.user, **fields)
    override.pk, override.created_by, override.created_at = saved.pk, saved.created_by, saved.created_at
    override._state.adding = False
    return saved


class OverrideInline(admin.TabularInline):
    model = Override
    form = OverrideForm
    extra = 0
    fields = ["slot", "person", "start", "end", "reason", "created_by"]
    readonly_fields = ["created_by"]
    autocomplete_fields = ["person"]
    ordering = ["-start"]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form = type(formset.form.__name__, (formset.form,), {"request_user": request.user})
        return formset


@admin.register(Rotation)
class RotationAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "timezone", "shift_length_days", "handoff_weekday", "handoff_time", "is_active"]
    list_filter = ["is_active", "team", "timezone", "shift_length_days"]
    search_fields = ["name", "team__name", "members__person__name"]
    list_select_related = ["team"]
    inlines = [RotationMemberInline, OverrideInline]
    readonly_fields = ["shift_preview"]
    fieldsets = [
        (None, {"fields": ["team", "name", "description", "is_active"]}),
        ("Handoff", {"fields": ["timezone", "shift_length_days", "handoff_weekday", "handoff_time", "start_date"]}),
        ("Next 4 weeks", {"fields": ["shift_preview"]}),
    ]

    @admin.display(description="shifts")
    def shift_preview(self, obj):
        if obj is None or not obj.pk:
            return "Save the rotation to see its next 4 weeks of shifts."
        start = datetime.combine(timezone.now().astimezone(obj.zone).date(), time(0), tzinfo=obj.zone)
        plan, shifts = selectors.rotation_calendar(obj, start=start, weeks=4)
        return render_to_string(
            "oncall/partials/shift_preview.html",
            {
                "rows": selectors.calendar_rows(plan, shifts),
                "rotation": obj,
                "gaps": [s for s in shifts if s.is_gap and s.index is not None],
            },
        )

    def save_formset(self, request, form, formset, change):
        if formset.model is not Override:
            return super().save_formset(request, form, formset, change)
        # Overrides through their services (rules, rotation lock), as on the override's own admin page.
        formset.save(commit=False)
        for override in formset.deleted_objects:
            services.cancel_override(override=override, by=request.user)
        for override_form in formset.forms:
            if override_form in formset.deleted_forms or not override_form.has_changed():
                continue
            _save_override(request, override_form, override_form.instance)


@admin.register(Override)
class OverrideAdmin(admin.ModelAdmin):
    list_display = ["rotation", "slot", "person", "start", "end", "reason", "created_by"]
    list_filter = ["slot", "rotation__team", "rotation"]
    search_fields = ["person__name", "reason", "rotation__name"]
    date_hierarchy = "start"
    autocomplete_fields = ["person"]
    readonly_fields = ["created_by", "created_at"]
    list_select_related = ["rotation__team", "person", "created_by"]
    form = OverrideForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request_user": request.user})

    def save_model(self, request, obj, form, change):
        # The form asked the same rules; a refusal here is a race, and the service's savepoint kept nothing.
        try:
            _save_override(request, form, obj)
        except DomainError as error:
            request._override_admin_refused = error.message

    def response_add(self, request, obj, post_url_continue=None):
        return self._refused(request) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        return self._refused(request) or super().response_change(request, obj)

    def log_addition(self, request, obj, message):
        if not getattr(request, "_override_admin_refused", None):
            return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if not getattr(request, "_override_admin_refused", None):
            return super().log_change(request, obj, message)

    def _refused(self, request):
        refused = getattr(request, "_override_admin_refused", None)
        if refused:
            self.message_user(request, f"Nothing was saved: {refused}", level=messages.ERROR)
            return HttpResponseRedirect(request.path)
        return None

    def delete_model(self, request, obj):
        services.cancel_override(override=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for override in queryset:
            services.cancel_override(override=override, by=request.user)


class EscalationLevelInline(admin.TabularInline):
    model = EscalationLevel
    form = OrderedRowForm
    extra = 0
    fields = ["position", "name", "delay", "targets_summary"]
    readonly_fields = ["targets_summary"]
    ordering = ["position"]
    show_change_link = True

    @admin.display(description="targets (edit on the level's page)")
    def targets_summary(self, obj):
        if not obj.pk:
            return "—"
        return ", ".join(target.describe() for target in obj.targets.all()) or "None yet"


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "is_default"]
    list_filter = ["is_default", "team"]
    search_fields = ["name", "description"]
    inlines = [EscalationLevelInline]
    readonly_fields = ["schedule_preview"]

    @admin.display(description="planned schedule if paging started now")
    def schedule_preview(self, obj):
        if obj is None or not obj.pk:
            return "Save the policy to see its schedule per severity."
        policy = selectors.policy_with_levels(obj)
        now = timezone.now()
        # A policy without a team pages the team owning the affected service: preview it with the first team
        # that has an active rotation, so the targets show real names.
        team = obj.team or Team.objects.filter(rotations__is_active=True).order_by("name").first()
        rows = []
        for severity in SeverityPolicy.objects.order_by("rank"):
            steps = plan_escalation(policy, severity, now, team=team)
            rows.append((severity, [(step, int((step.at - now).total_seconds() // 60)) for step in steps]))
        context = {"rows": rows, "team": team, "is_example": obj.team is None}
        return render_to_string("oncall/partials/schedule_preview.html", context)


class EscalationTargetInline(admin.TabularInline):
    model = EscalationTarget
    extra = 0
    fields = ["kind", "team", "slot", "person", "hotline"]
    autocomplete_fields = ["person", "hotline", "team"]


@admin.register(EscalationLevel)
class EscalationLevelAdmin(admin.ModelAdmin):
    list_display = ["policy", "position", "name", "delay"]
    list_filter = ["policy"]
    list_select_related = ["policy"]
    search_fields = ["name", "policy__name"]
    inlines = [EscalationTargetInline]


@admin.register(CalendarFeed)
class CalendarFeedAdmin(admin.ModelAdmin):
    list_display = ["person", "masked", "rotated_at"]
    fields = ["person", "masked", "rotated_at"]
    readonly_fields = ["person", "masked", "rotated_at"]
    search_fields = ["person__name"]

    @admin.display(description="token")
    def masked(self, obj):
        return format_html("<code>{}</code>", obj.masked_token)

    def has_add_permission(self, request):
        return False  # created on first use; rotated with the Person action

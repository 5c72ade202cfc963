"""Managers announce maintenance and pin service states here; saves go through the status page services,
so a refused change becomes a form error rather than a half-saved row."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from incidents.errors import DomainError

from . import services
from .models import MaintenanceWindow, ServiceStatusOverride, Subscriber, UpdateDelivery


def _as_validation_error(error: DomainError, form) -> ValidationError:
    field = error.field if error.field in form.fields else None
    return ValidationError({field: error.message} if field else error.message)


class MaintenanceWindowForm(forms.ModelForm):
    class Meta:
        model = MaintenanceWindow
        fields = ["title", "description", "services", "starts_at", "ends_at"]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    form = MaintenanceWindowForm
    list_display = ["title", "starts_at", "ends_at", "service_list", "created_by"]
    list_filter = ["services"]
    search_fields = ["title", "description"]
    date_hierarchy = "starts_at"
    filter_horizontal = ["services"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").prefetch_related("services")

    @admin.display(description="services")
    def service_list(self, obj):
        return ", ".join(service.name for service in obj.services.all())

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {
            "title": data["title"],
            "description": data.get("description", ""),
            "services": data["services"],
            "starts_at": data["starts_at"],
            "ends_at": data["ends_at"],
            "by": request.user,
        }
        saved = services.change_maintenance(window=obj, **fields) if change else services.schedule_maintenance(**fields)
        obj.pk = saved.pk
        obj.created_by = saved.created_by

    def save_related(self, request, form, formsets, change):
        # The services were set by the service function; saving the m2m again would only repeat it.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        # Admin deletion removes the row outright (a mistaken entry); the staff page's "cancel" ends a running
        # window instead. The manager check still applies.
        services.require_maintenance_permission(request.user)
        obj.delete()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        admin_user = request.user

        class GuardedForm(form_class):
            def _post_clean(self):
                super()._post_clean()
                # Let the service's own rules (permissions, validation) speak as form errors.
                if self.errors:
                    return
                try:
                    services.require_maintenance_permission(admin_user)
                    services.validate_maintenance_window(
                        title=self.cleaned_data.get("title"),
                        starts_at=self.cleaned_data.get("starts_at"),
                        ends_at=self.cleaned_data.get("ends_at"),
                        services=list(self.cleaned_data.get("services") or []),
                        current_starts_at=self.initial.get("starts_at") if self.instance.pk else None,
                    )
                except DomainError as error:
                    self.add_error(error.field if error.field in self.fields else None, error.message)

        return GuardedForm


@admin.register(ServiceStatusOverride)
class ServiceStatusOverrideAdmin(admin.ModelAdmin):
    list_display = ["service", "state", "message", "set_by", "updated_at"]
    list_filter = ["state"]
    fields = ["service", "state", "message"]
    autocomplete_fields = ["service"]

    def save_model(self, request, obj, form, change):
        try:
            saved = services.set_service_override(
                service=form.cleaned_data["service"],
                state=form.cleaned_data["state"],
                message=form.cleaned_data.get("message", ""),
                by=request.user,
            )
        except DomainError as error:
            raise _as_validation_error(error, form)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.clear_service_override(service=obj.service, by=request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class GuardedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                service = cleaned.get("service")
                if service is not None and not service.is_public:
                    self.add_error("service", f"{service.name} is not on the public status page.")
                return cleaned

        return GuardedForm


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "all_services", "confirmed_at", "unsubscribed_at", "created_at"]
    list_filter = [
        "all_services",
        ("confirmed_at", admin.EmptyFieldListFilter),
        ("unsubscribed_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["email"]
    readonly_fields = [
        "email",
        "all_services",
        "services",
        "created_at",
        "confirmed_at",
        "unsubscribed_at",
        "confirmation_sent_at",
    ]

    def has_add_permission(self, request):
        return False  # only the owner of an address can subscribe it (double opt-in)


@admin.register(UpdateDelivery)
class UpdateDeliveryAdmin(admin.ModelAdmin):
    list_display = ["update", "subscriber", "state", "attempts", "sent_at", "last_error"]
    list_filter = ["state"]
    search_fields = ["subscriber__email"]
    list_select_related = ["update", "subscriber"]
    actions = ["retry_failed"]
    readonly_fields = [
        "update",
        "subscriber",
        "state",
        "created_at",
        "next_attempt_at",
        "attempts",
        "sent_at",
        "last_error",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Retry the selected failed emails")
    def retry_failed(self, request, queryset):
        try:
            count = services.retry_failed_deliveries(
                delivery_ids=queryset.values_list("pk", flat=True), by=request.user
            )
        except DomainError as error:
            self.message_user(request, error.message, level=messages.ERROR)
            return
        self.message_user(request, f"{count} failed email(s) will be retried within a minute.", level=messages.SUCCESS)

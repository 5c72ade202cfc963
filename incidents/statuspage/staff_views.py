"""The staff side of the status page: Communications Leads pin a service's state, managers announce
maintenance. Signed-in only; every change goes through statuspage.services, which checks the permission."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from incidents import access
from incidents.errors import DomainError, PermissionDenied
from incidents.models import Service

from . import selectors, services
from .forms import MaintenanceForm, OverrideForm
from .models import MaintenanceWindow


def _manage_page(request, *, maintenance_form=None, override_errors=None, status=200):
    page = selectors.status_page()
    windows_in_progress, windows_upcoming = selectors.maintenance_for_staff(now=page.now)
    rows = [(row, OverrideForm(initial={"state": row.state, "message": row.message})) for row in page.services]
    context = {
        "page": page,
        "rows": rows,
        "windows_in_progress": windows_in_progress,
        "windows_upcoming": windows_upcoming,
        "override_errors": override_errors or {},
        "maintenance_form": maintenance_form or MaintenanceForm(),
        "can_change_states": access.can_respond(request.user),
        "can_schedule": access.is_manager(request.user),
    }
    return render(request, "statuspage/manage.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD"])
def manage(request):
    return _manage_page(request)


@login_required
@require_POST
def set_override(request, slug):
    service = get_object_or_404(Service, slug=slug)
    form = OverrideForm(request.POST)
    try:
        if request.POST.get("action") == "clear":
            services.clear_service_override(service=service, by=request.user)
            messages.success(request, f"{service.name} is back to its automatic state.")
            return redirect("statuspage:manage")
        if form.is_valid():
            services.set_service_override(
                service=service, state=form.cleaned_data["state"], message=form.cleaned_data["message"], by=request.user
            )
            messages.success(request, f"{service.name} now shows {form.cleaned_data['state'].replace('_', ' ')}.")
            return redirect("statuspage:manage")
        error = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
    except PermissionDenied as denied:
        return _manage_page(request, override_errors={service.pk: denied.message}, status=403)
    except DomainError as refused:
        error = refused.message
    return _manage_page(request, override_errors={service.pk: error}, status=400)


@login_required
@require_POST
def schedule(request):
    form = MaintenanceForm(request.POST)
    if form.is_valid():
        try:
            window = services.schedule_maintenance(**form.cleaned_data, by=request.user)
        except PermissionDenied as denied:
            form.add_error(None, denied.message)
            return _manage_page(request, maintenance_form=form, status=403)
        except DomainError as refused:
            form.add_error(refused.field if refused.field in form.fields else None, refused.message)
        else:
            messages.success(request, f"Maintenance scheduled: {window.title}.")
            return redirect("statuspage:manage")
    return _manage_page(request, maintenance_form=form, status=400)


@login_required
@require_POST
def cancel(request, pk):
    window = get_object_or_404(MaintenanceWindow, pk=pk)
    try:
        outcome = services.cancel_maintenance(window=window, by=request.user)
    except DomainError as refused:  # includes PermissionDenied
        messages.error(request, refused.message)
        return redirect("statuspage:manage")
    verb = "ended now" if outcome == "ended" else "cancelled"
    messages.success(request, f"Maintenance {verb}: {window.title}.")
    return redirect("statuspage:manage")

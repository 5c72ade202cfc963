"""The service page (its certificates and probes) and "Run triage" on an incident."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from incidents import selectors
from incidents.errors import PermissionDenied
from incidents.interface import forbidden
from incidents.models import Incident, Service

from . import services
from .selectors import certificates_of


@login_required
def service_detail(request, slug: str):
    service = get_object_or_404(Service.objects.select_related("owning_team"), slug=slug)
    context = {
        "service": service,
        "certificates": certificates_of(service),
        "probes": service.probes.filter(is_active=True).order_by("position", "id"),
    }
    return render(request, "watch/service.html", context)


@login_required
@require_POST
def run_triage(request, reference: str):
    try:
        incident = selectors.access_incident(reference=reference, user=request.user)
    except Incident.DoesNotExist:
        raise Http404("No such incident.")
    try:
        count = len(services.request_triage(incident=incident, by=request.user))
    except PermissionDenied as error:
        return forbidden(request, error.message)
    if count:
        messages.success(
            request, f"Triage started: {count} probe{'s' if count != 1 else ''}; results appear on the timeline."
        )
    else:
        messages.info(request, "The affected services have no triage probes.")
    return redirect("incidents:detail", reference=incident.reference)

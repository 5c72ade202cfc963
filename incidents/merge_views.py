"""Merge a duplicate into another incident and link related incidents, from the incident page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from . import merging, selectors
from .errors import DomainError, PermissionDenied
from .models import Incident


def _visible(request, reference: str) -> Incident:
    try:
        return selectors.access_incident(reference=reference, user=request.user)
    except Incident.DoesNotExist:
        raise Http404("No such incident.")


def _other(request, field: str) -> Incident | None:
    reference = (request.POST.get(field) or "").strip().upper()
    if not reference:
        messages.error(request, "Give the other incident's reference, e.g. INC-12.")
        return None
    try:
        return selectors.access_incident(reference=reference, user=request.user)
    except Incident.DoesNotExist:
        messages.error(request, f"No incident {reference} that you can see.")
        return None


def _run(request, incident: Incident, action, success: str):
    try:
        action()
    except (DomainError, PermissionDenied) as error:
        messages.error(request, str(getattr(error, "message", error)))
        return redirect(incident.get_absolute_url() + "#card-merge")
    messages.success(request, success)
    return None


def _merge(request, incident, *, source, into):
    """Merge `source` into `into` (from either page) and go to the surviving incident."""
    reason = request.POST.get("reason", "")
    failed = _run(
        request,
        incident,
        lambda: merging.merge_incident(source=source, into=into, by=request.user, reason=reason),
        f"{source.reference} was merged into {into.reference}.",
    )
    return failed or redirect(into.get_absolute_url())


@login_required
@require_POST
def merge(request, reference: str):
    incident = _visible(request, reference)
    into = _other(request, "into")
    if into is None:
        return redirect(incident.get_absolute_url() + "#card-merge")
    return _merge(request, incident, source=incident, into=into)


@login_required
@require_POST
def merge_duplicate(request, reference: str):
    """The same merge from the other side: on A's page, "merge INC-B into this incident"."""
    incident = _visible(request, reference)
    duplicate = _other(request, "duplicate")
    if duplicate is None:
        return redirect(incident.get_absolute_url() + "#card-merge")
    return _merge(request, incident, source=duplicate, into=incident)


@login_required
@require_POST
def link_related(request, reference: str):
    incident = _visible(request, reference)
    other = _other(request, "other")
    if other is not None:
        _run(
            request,
            incident,
            lambda: merging.link_related(incident=incident, other=other, by=request.user),
            f"Linked to {other.reference}.",
        )
    return redirect(incident.get_absolute_url() + "#card-merge")


@login_required
@require_POST
def unlink_related(request, reference: str, other: str):
    incident = _visible(request, reference)
    try:
        linked = selectors.access_incident(reference=other, user=request.user)
    except Incident.DoesNotExist:
        raise Http404("No such incident.")
    _run(
        request,
        incident,
        lambda: merging.unlink_related(incident=incident, other=linked, by=request.user),
        f"No longer linked to {linked.reference}.",
    )
    return redirect(incident.get_absolute_url() + "#card-merge")

"""Paging in the browser: acknowledge from the incident page, the one-click acknowledge link from a page message
(no login; GET confirms, POST acknowledges), and "my pages" for the signed-in responder."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from incidents import access
from incidents import services as incident_services
from incidents.errors import DomainError
from incidents.models import Incident
from incidents.selectors import incident_for_page

from . import links, selectors

PANEL = "incidents/partials/paging_panel.html"


def _incident_or_404(request, reference: str) -> Incident:
    try:
        return incident_for_page(reference=reference, user=request.user)
    except Incident.DoesNotExist:
        raise Http404("No such incident.")


def _panel(request, incident: Incident, *, error: str = "", status: int = 200) -> HttpResponse:
    context = {"incident": incident, "page": {"can_respond": access.can_respond(request.user)}}
    html = render_to_string(PANEL, context, request=request)
    if error:
        html = html.replace("</section>", f'<p class="form-error" role="alert">{_escape(error)}</p></section>', 1)
    response = HttpResponse(html, status=status)
    # The incident page's timeline polls now and brings the header (and this panel) up to date.
    response["HX-Trigger"] = "timeline-refresh"
    return response


def _escape(text: str) -> str:
    return escape(text)


@login_required
@require_POST
def acknowledge(request, reference):
    """Acknowledge the incident: stops escalation of its pages (incidents.services.acknowledge_incident)."""
    incident = _incident_or_404(request, reference)
    if not access.can_respond(request.user):
        message = "You can read this incident but need the responder role to acknowledge it."
        if request.htmx:
            return _panel(request, incident, error=message, status=403)
        return render(request, "incidents/forbidden.html", {"message": message}, status=403)
    try:
        incident_services.acknowledge_incident(incident=incident, by=request.user)
    except DomainError as error:
        if request.htmx:
            return _panel(request, incident, error=error.message, status=error.status_code)
        messages.error(request, error.message)
        return redirect(incident.get_absolute_url())
    incident = _incident_or_404(request, reference)
    if request.htmx:
        return _panel(request, incident)
    messages.success(request, f"{incident.reference} acknowledged: escalation stopped.")
    return redirect(incident.get_absolute_url())


@login_required
@require_GET
def panel(request, reference):
    return _panel(request, _incident_or_404(request, reference))


@require_http_methods(["GET", "POST"])
def acknowledge_link(request, token):
    """The one-click link from a page message. Works without a login session; GET only shows what will be
    acknowledged (link scanners follow GETs), POST acknowledges and uses the link up."""
    try:
        notification = links.notification_for_token(token)
    except links.LinkError as error:
        return render(request, "paging/acknowledge_link.html", {"error": error.message}, status=400)
    incident = notification.incident
    context = {"notification": notification, "incident": incident, "token": token}
    if request.method == "GET":
        return render(request, "paging/acknowledge_link.html", context)
    try:
        page, acknowledged_now = links.acknowledge_via_link(token=token)
    except DomainError as error:
        return render(request, "paging/acknowledge_link.html", {**context, "error": error.message}, status=400)
    return render(
        request,
        "paging/acknowledge_link.html",
        {**context, "done": True, "acked_page": page, "acknowledged_now": acknowledged_now},
    )


@login_required
@require_GET
def mine(request):
    """The pages that reached me, open ones first, with an acknowledge button on open ones."""
    return render(
        request,
        "paging/mine.html",
        {
            "pages": selectors.my_pages(user=request.user),
            "person": selectors.person_for(request.user),
            "can_respond": access.can_respond(request.user),
        },
    )

"""Paging in the browser: acknowledge from the incident page, the one-click acknowledge link from a page message
(no login; GET confirms, POST acknowledges), and "my pages" for the signed-in responder."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from incidents import access
from incidents.errors import DomainError
from incidents.interface import error_status, forbidden
from incidents.models import Incident
from incidents.selectors import incident_for_page
from incidents.services.status import acknowledge_incident
from oncall import services as oncall_services
from oncall.forms import AddRespondersForm, ContactMethodForm, NotificationRuleForm
from oncall.models import ContactMethod, NotificationRule

from . import inbound, links, providers, selectors
from .services import responders
from .services.recipients import send_test_page

logger = logging.getLogger("oncall.paging.views")

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
    """Acknowledge the incident: stops escalation of its pages (incidents.services.status.acknowledge_incident)."""
    incident = _incident_or_404(request, reference)
    if not access.can_respond(request.user):
        message = "You can read this incident but need the responder role to acknowledge it."
        if request.htmx:
            return _panel(request, incident, error=message, status=403)
        return forbidden(request, message)
    try:
        acknowledge_incident(incident=incident, by=request.user)
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


# --- Twilio: every request verified with the SDK's RequestValidator before anything is read -------------------


def _twilio_verified(request) -> bool:
    """X-Twilio-Signature over the URL Twilio requested (SITE_URL + path, as the portal gave it) and the POST
    parameters. A missing token (Twilio not configured) verifies nothing."""
    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    url = settings.SITE_URL + request.get_full_path()
    if token and signature and RequestValidator(token).validate(url, request.POST.dict(), signature):
        return True
    logger.warning(
        "Twilio request refused (bad or missing X-Twilio-Signature): %s from %s",
        request.path,
        request.META.get("REMOTE_ADDR", ""),
    )
    return False


def _twiml(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/xml")


def _refused() -> HttpResponse:
    return HttpResponse("Invalid Twilio signature.", status=403, content_type="text/plain")


@csrf_exempt
@require_POST
def twilio_status(request):
    """Status callbacks of messages and calls (MessageSid/MessageStatus or CallSid/CallStatus)."""
    if not _twilio_verified(request):
        return _refused()
    sid = request.POST.get("MessageSid") or request.POST.get("CallSid") or ""
    status = request.POST.get("MessageStatus") or request.POST.get("CallStatus") or ""
    try:
        inbound.record_status(sid=sid, status=status, error_code=request.POST.get("ErrorCode", ""))
    except DomainError as error:
        logger.warning("Twilio status callback refused: %s", error.message)
        return JsonResponse({"error": error.message, "field": error.field}, status=error.status_code)
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_sms(request):
    """An SMS sent to the portal's number: "ACK 4821" or "1" acknowledges. The answer is the reply SMS."""
    if not _twilio_verified(request):
        return _refused()
    try:
        reply = inbound.acknowledge_by_sms(from_number=request.POST.get("From", ""), body=request.POST.get("Body", ""))
    except DomainError as error:
        return JsonResponse({"error": error.message, "field": error.field}, status=error.status_code)
    response = MessagingResponse()
    response.message(reply.text)
    return _twiml(str(response))


@csrf_exempt
@require_POST
def twilio_gather(request, pk):
    """The key pressed on a page call (Gather's action)."""
    if not _twilio_verified(request):
        return _refused()
    response = VoiceResponse()
    try:
        said = inbound.pressed_on_call(notification_id=pk, digits=request.POST.get("Digits", "").strip())
    except DomainError as error:
        return JsonResponse({"error": error.message, "field": error.field}, status=error.status_code)
    if said:
        response.say(said)
    else:
        gather = response.gather(num_digits=1, action=providers.gather_url(pk), method="POST", timeout=10)
        gather.say("Press 1 to acknowledge. Press 2 to escalate now.")
        response.say("Goodbye.")
    return _twiml(str(response))


# --- "My notification rules" ---------------------------------------------------------------------------------

RULES = "paging/rules.html"


def _rules_context(request, person, **extra) -> dict:
    return {
        "person": person,
        "methods": list(person.contact_methods.order_by("position", "pk")) if person else [],
        "rules": list(person.notification_rules.select_related("contact_method").order_by("delay_minutes", "pk"))
        if person
        else [],
        "method_form": ContactMethodForm(),
        "rule_form": NotificationRuleForm(person=person) if person else None,
        "channel_warning": selectors.channel_warning(),
        **extra,
    }


def _rules_response(request, person, *, status: int = 200, **extra) -> HttpResponse:
    template = RULES + "#rules" if request.htmx else RULES
    return render(request, template, _rules_context(request, person, **extra), status=status)


def _my_person(request):
    person = selectors.person_for(request.user)
    if person is None:
        raise Http404("Your account is not linked to an on-call contact.")
    return person


@login_required
@require_GET
def my_rules(request):
    """The person's contact methods and rules ("N minutes after I am paged, notify me by METHOD")."""
    return _rules_response(request, selectors.person_for(request.user))


@login_required
@require_POST
def add_contact_method(request):
    person = _my_person(request)
    form = ContactMethodForm(request.POST)
    if form.is_valid():
        try:
            oncall_services.add_contact_method(
                person=person,
                channel=form.cleaned_data["channel"],
                address=form.cleaned_data["address"],
                by=request.user,
            )
        except DomainError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
    if form.errors:
        return _rules_response(request, person, status=error_status(request), method_form=form)
    return _rules_response(request, person, notice="Contact method added. Give it a rule to use it.")


@login_required
@require_POST
def add_rule(request):
    person = _my_person(request)
    form = NotificationRuleForm(request.POST, person=person)
    if form.is_valid():
        try:
            oncall_services.add_notification_rule(person=person, by=request.user, **form.cleaned_data)
        except DomainError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
    if form.errors:
        return _rules_response(request, person, status=error_status(request), rule_form=form)
    return _rules_response(request, person, notice="Rule added.")


@login_required
@require_POST
def remove_rule(request, pk):
    person = _my_person(request)
    rule = get_object_or_404(NotificationRule, pk=pk, person=person)
    oncall_services.remove_notification_rule(rule=rule, by=request.user)
    return _rules_response(request, person, notice="Rule removed.")


@login_required
@require_POST
def test_page(request, pk):
    """ "Send me a test page" through the contact method's real channel."""
    person = _my_person(request)
    method = get_object_or_404(ContactMethod.objects.select_related("person"), pk=pk, person=person)
    try:
        handed = send_test_page(contact_method=method, by=request.user)
    except DomainError as error:
        return _rules_response(request, person, status=502 if not request.htmx else 200, test_error=error.message)
    label = {"logged": "only written to the log (no provider configured): it reached nobody"}.get(
        handed.receipt, "handed to the provider" + (f" ({handed.provider_id})" if handed.provider_id else "")
    )
    return _rules_response(
        request,
        person,
        test_result=f"Test page by {method.get_channel_display()} {label}.",
        test_logged=handed.receipt == "logged",
    )


# --- Add responders from the incident page ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def add_responders(request, reference):
    """GET: the form (a page, or the fragment the panel's "Add responders" loads). POST: page another team
    (through its escalation policy) or a person, with a message; answers with the panel."""
    incident = _incident_or_404(request, reference)
    if not access.can_respond(request.user):
        message = "You need the responder role to add responders."
        return forbidden(request, message)
    if request.method == "GET":
        template = "paging/add_responders.html#form" if request.htmx else "paging/add_responders.html"
        return render(request, template, {"incident": incident, "form": AddRespondersForm()})
    form = AddRespondersForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            responders.add_responders(incident=incident, by=request.user, **form.cleaned_data)
        except DomainError as exc:
            error = exc.message
    else:
        error = " ".join(message for messages_ in form.errors.values() for message in messages_)
    incident = _incident_or_404(request, reference)
    if request.htmx:
        return _panel(request, incident, error=error, status=422 if error else 200)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "Responders paged.")
    return redirect(incident.get_absolute_url())

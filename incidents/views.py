"""The responder pages: declare, and the incident page with its live timeline and actions (the lists are in
list_views.py). Views parse, call incidents.services, and render; one view serves both the full page and its
htmx partials (request.htmx), the partials being {% partialdef %} blocks of the page template.

Errors: a DomainError becomes an error on the form field it names (400 for a full page, 422 for htmx);
PermissionDenied is a 403 page; an incident the user may not see is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from . import access, selectors
from .errors import DomainError, PermissionDenied
from .forms import (
    AcknowledgeForm,
    AttachRunbookForm,
    ChecklistTickForm,
    DeclareForm,
    DetailsForm,
    ExternalUpdateForm,
    FiveWhysForm,
    InternalUpdateForm,
    NoteForm,
    RoleForm,
    SeverityForm,
    StatusForm,
)
from .interface import apply_domain_error, forbidden, login_required
from .markdown import render_markdown
from .models import ChecklistItem, EventType, Incident, UpdateKind
from .services import checklist as checklist_services
from .services import entries as entries_services
from .services import roles as roles_services
from .services import status as status_services
from .services.details import update_incident_details
from .services.updates import post_status_update

DETAIL = "incidents/detail.html"
# New timeline entries of these types change the checklists card too (the poll refreshes it).
CHECKLIST_EVENTS = {EventType.CHECKLIST_TICKED, EventType.RUNBOOK_ATTACHED}


# --- helpers ----------------------------------------------------------------------------------------------


def _incident_or_404(request, reference: str) -> Incident:
    try:
        return selectors.incident_for_page(reference=reference, user=request.user)
    except Incident.DoesNotExist:
        raise Http404("No such incident.")


def _int_param(request, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


# --- declare ----------------------------------------------------------------------------------------------


@login_required
def declare(request):
    if not access.can_respond(request.user):
        return forbidden(request, "You need the responder role to declare incidents.")
    form = DeclareForm(request.POST or None, initial={"severity": None})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                incident = status_services.declare_incident(
                    title=data["title"],
                    severity=data["severity"],
                    by=request.user,
                    summary=data["summary"],
                    services=data["services"],
                    detection_source=data["detection_source"],
                    impact=data["impact"],
                    users_affected_percent=data["users_affected_percent"],
                    is_restricted=data["is_restricted"],
                    detected_at=data["detected_at"],
                    incident_commander=data["incident_commander"],
                    runbook=data["runbook"],
                )
            except PermissionDenied as error:
                return forbidden(request, error.message)
            except DomainError as error:
                apply_domain_error(form, error)
            else:
                messages.success(request, f"{incident.reference} declared. You are on it.")
                return redirect(incident.get_absolute_url())
        status = 400
    return render(request, "incidents/declare.html", {"form": form}, status=status)


# --- incident page ----------------------------------------------------------------------------------------


def _forms(page: selectors.IncidentPage, overrides: dict) -> dict:
    incident = page.incident
    forms = {
        "ack_form": lambda: AcknowledgeForm(),
        "status_form": lambda: StatusForm(incident=incident),
        "severity_form": lambda: SeverityForm(incident=incident),
        "role_form": lambda: RoleForm(),
        "runbook_form": lambda: AttachRunbookForm(),
        "five_whys_form": lambda: FiveWhysForm(five_whys=page.five_whys),
        "internal_form": lambda: InternalUpdateForm(initial={"status": _internal_status_for(incident)}),
        "external_form": lambda: _external_form(page),
        "resolution_form": lambda: _external_form(page, auto_id=RESOLUTION_FORM_IDS),
        "note_form": lambda: NoteForm(),
        "details_form": lambda: DetailsForm.for_incident(incident),
    }
    return {name: overrides.get(name) or factory() for name, factory in forms.items()}


# The guide's status-page template, filled in for the update that tells users it is over.
RESOLVED_DESCRIPTION = (
    "This incident has been resolved and the affected services are operating normally. "
    "We are sorry for the disruption and thank you for your patience."
)


def _external_form(page: selectors.IncidentPage, data=None, *, auto_id=None) -> ExternalUpdateForm:
    """The status-page update form; once the incident is resolved or closed it is the guide's "Resolved" update,
    filled in from the last published one (one click to publish)."""
    incident = page.incident
    initial = {"status": incident.status if incident.status != "closed" else "resolved"}
    if not incident.is_active:
        latest = page.latest_published
        initial.update(
            {"title": latest.title if latest else incident.title, "description": RESOLVED_DESCRIPTION, "publish": True}
        )
    return ExternalUpdateForm(
        data,
        initial=initial,
        auto_id=auto_id or EXTERNAL_FORM_IDS,
        incident=incident,
        public_services=page.public_services,
        current_states=page.current_component_states,
    )


def _internal_status_for(incident: Incident) -> str:
    # The guide's internal template says "Fixing" where the lifecycle says "Identified".
    return {"identified": "fixing", "closed": "resolved"}.get(incident.status, incident.status)


def _detail_context(
    request, incident: Incident, *, overrides: dict | None = None, page: selectors.IncidentPage | None = None
):
    page = page or selectors.IncidentPage(request.user, incident)
    return {
        "incident": incident,
        "page": page,
        "timeline_filters": selectors.timeline_filter_groups(),
        **(overrides or {}),
        **_forms(page, overrides or {}),
    }


@login_required
@require_GET
def detail(request, reference):
    after = _int_param(request, "after")
    kind = request.GET.get("kind", "")
    if request.htmx and after is not None:
        return _timeline_poll(request, reference, after=after, kind=kind)
    incident = _incident_or_404(request, reference)
    if incident.duplicate_of_id and not request.htmx:
        merged_into = Incident.objects.visible_to(request.user).filter(pk=incident.duplicate_of_id).first()
        if merged_into is not None:
            messages.info(request, f"{incident.reference} was merged into {merged_into.reference} as a duplicate.")
            return redirect(merged_into.get_absolute_url())
    page = selectors.IncidentPage(request.user, incident, kind=kind, before_id=_int_param(request, "before"))
    context = _detail_context(request, incident, page=page)
    if request.htmx and page.before_id is not None:
        return render(request, f"{DETAIL}#timeline-older-response", context)
    if request.htmx and request.GET.get("partial") == "timeline":
        return render(request, f"{DETAIL}#timeline-card", context)
    return render(request, DETAIL, context)


def _timeline_poll(request, reference, *, after: int, kind: str):
    """The 2-second poll. No new entries: 204 after one query, and htmx keeps the element (and cursor) as is."""
    kind = selectors.timeline_filter(kind)
    entries = selectors.visible_timeline_after(reference=reference, user=request.user, after_id=after, kind=kind)
    if not entries:
        return HttpResponse(status=204)
    incident = _incident_or_404(request, reference)
    page = selectors.IncidentPage(request.user, incident, kind=kind)
    context = _detail_context(request, incident, page=page)
    context.update(
        {
            "new_entries": entries,
            "poll_url": page.timeline_url(after=max(e.id for e in entries)),
            "refresh_checklists": any(e.event_type in CHECKLIST_EVENTS for e in entries),
            "oob": True,
        }
    )
    return render(request, f"{DETAIL}#timeline-poll-response", context)


def _respond_to_action(request, incident: Incident, *, section: str, form_name: str, form, ok: bool, message=""):
    """Success: htmx gets the section redrawn (fresh forms) plus the header out of band, and a nudge for the
    timeline to poll now; a plain browser is redirected back to the page (POST/redirect/GET).
    Failure: the section (htmx, 422) or the whole page (400) with the bound form and its errors."""
    if ok:
        if not request.htmx:
            if message:
                messages.success(request, message)
            return redirect(f"{incident.get_absolute_url()}#{section.replace('-card', '')}")
        fresh = selectors.incident_for_page(reference=incident.reference, user=request.user)
        context = _detail_context(request, fresh)
        html = render_to_string(f"{DETAIL}#{section}", context, request=request)
        if section != "header":
            html += render_to_string(f"{DETAIL}#header", {**context, "oob": True}, request=request)
        response = HttpResponse(html)
        response["HX-Trigger"] = "timeline-refresh"
        return response
    context = _detail_context(request, incident, overrides={form_name: form})
    if request.htmx:
        return render(request, f"{DETAIL}#{section}", context, status=422)
    return render(request, DETAIL, context, status=400)


def _action(section: str, form_name: str):
    """Decorator for the incident page's POST actions: login, POST only, visibility (404), responder (403),
    then the wrapped function validates and calls the service, returning (form, ok, message)."""

    def decorate(perform):
        @login_required
        @require_POST
        def view(request, reference, **kwargs):
            incident = _incident_or_404(request, reference)
            if not access.can_respond(request.user):
                return forbidden(request, "You can read this incident but need the responder role to act on it.")
            try:
                form, ok, message = perform(request, incident, **kwargs)
            except PermissionDenied as error:
                return forbidden(request, error.message)
            return _respond_to_action(
                request, incident, section=section, form_name=form_name, form=form, ok=ok, message=message
            )

        view.__name__ = perform.__name__
        view.__doc__ = perform.__doc__
        return view

    return decorate


def _try(form, call) -> bool:
    """Run a service call for a valid form; a DomainError lands on the field it names."""
    if not form.is_valid():
        return False
    try:
        call(form.cleaned_data)
    except PermissionDenied:
        raise
    except DomainError as error:
        apply_domain_error(form, error)
        return False
    return True


@_action("header", "ack_form")
def acknowledge(request, incident):
    form = AcknowledgeForm(request.POST)
    ok = _try(form, lambda d: status_services.acknowledge_incident(incident=incident, by=request.user))
    return form, ok, "Acknowledged."


@_action("status-card", "status_form")
def change_status(request, incident):
    form = StatusForm(request.POST, incident=incident)
    ok = _try(
        form,
        lambda d: status_services.change_status(
            incident=incident, to=d["status"], by=request.user, note=d["note"], override_reason=d["override_reason"]
        ),
    )
    return form, ok, "Status changed."


@_action("status-card", "severity_form")
def change_severity(request, incident):
    form = SeverityForm(request.POST, incident=incident)
    ok = _try(
        form,
        lambda d: status_services.change_severity(
            incident=incident, severity=d["severity"], by=request.user, reason=d["reason"]
        ),
    )
    return form, ok, "Severity changed."


@_action("roles-card", "role_form")
def assign_role(request, incident):
    form = RoleForm(request.POST)
    ok = _try(
        form,
        lambda d: roles_services.assign_role(
            incident=incident, role=d["role"], holder=request.user if d["claim"] else d["holder"], by=request.user
        ),
    )
    return form, ok, "Role assigned."


@_action("checklists-card", "checklist_form")
def tick_checklist_item(request, incident, item_id):
    try:
        item = ChecklistItem.objects.select_related("incident").get(pk=item_id, incident=incident)
    except ChecklistItem.DoesNotExist:
        raise Http404("No such checklist item on this incident.")
    form = ChecklistTickForm(request.POST)
    ok = _try(form, lambda d: checklist_services.tick_checklist_item(item=item, by=request.user, checked=d["checked"]))
    if not ok and not request.htmx:
        # The checklist has no form of its own to redraw: say what went wrong at the top of the page.
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return form, True, ""
    return form, ok, ""


@_action("checklists-card", "runbook_form")
def attach_runbook(request, incident):
    form = AttachRunbookForm(request.POST)
    ok = _try(
        form, lambda d: checklist_services.attach_runbook(incident=incident, runbook=d["runbook"], by=request.user)
    )
    return form, ok, "Runbook attached."


@_action("five-whys-card", "five_whys_form")
def record_five_whys(request, incident):
    form = FiveWhysForm(request.POST, five_whys=selectors.five_whys_of(incident=incident))
    ok = _try(
        form,
        lambda d: entries_services.record_five_whys(
            incident=incident, problem=d["problem"], whys=form.whys(), root_cause=d["root_cause"], by=request.user
        ),
    )
    return form, ok, "Five whys recorded."


# The internal and external update forms share field names on one page; their ids must differ for the labels.
EXTERNAL_FORM_IDS = "id_external_%s"
RESOLUTION_FORM_IDS = "id_resolution_%s"
# What each kind of update says besides its status and next update time (the guide's two templates).
UPDATE_FIELDS = {
    UpdateKind.INTERNAL: ("what_we_know", "what_we_are_doing", "impact", "eta"),
    UpdateKind.EXTERNAL: ("title", "description", "workaround", "publish"),
}
UPDATE_POSTED = {UpdateKind.INTERNAL: "Internal update posted.", UpdateKind.EXTERNAL: "Status page update posted."}


def _post_update(request, incident, kind: str, form):
    """Both update forms post through post_status_update: their kind's fields, the status and the next update
    time (and, for the status page, each service's public state)."""

    def post(data):
        extra = {"component_states": form.component_states()} if kind == UpdateKind.EXTERNAL else {}
        fields = {name: data[name] for name in UPDATE_FIELDS[kind]}
        return post_status_update(
            incident=incident,
            kind=kind,
            status=data["status"],
            by=request.user,
            next_update_at=data["next_update_at"],
            **fields,
            **extra,
        )

    return form, _try(form, post), UPDATE_POSTED[kind]


def _external_update(request, incident, *, auto_id: str):
    form = _external_form(selectors.IncidentPage(request.user, incident), request.POST, auto_id=auto_id)
    return _post_update(request, incident, UpdateKind.EXTERNAL, form)


@_action("updates-card", "internal_form")
def post_internal_update(request, incident):
    return _post_update(request, incident, UpdateKind.INTERNAL, InternalUpdateForm(request.POST))


@_action("updates-card", "external_form")
def post_external_update(request, incident):
    return _external_update(request, incident, auto_id=EXTERNAL_FORM_IDS)


@_action("status-card", "resolution_form")
def publish_resolution(request, incident):
    """The prompt after resolving or closing: publish the prefilled "Resolved" status-page update."""
    return _external_update(request, incident, auto_id=RESOLUTION_FORM_IDS)


@_action("details-card", "details_form")
def edit_details(request, incident):
    """The Incident Commander (or a manager) edits the title, summary, impact and services."""
    form = DetailsForm.for_incident(incident, request.POST)
    ok = _try(
        form,
        lambda d: update_incident_details(
            incident=incident,
            by=request.user,
            title=d["title"],
            summary=d["summary"],
            impact=d["impact"],
            services=list(d["services"]),
        ),
    )
    return form, ok, "Details saved."


@_action("note-card", "note_form")
def add_note(request, incident):
    form = NoteForm(request.POST)
    ok = _try(
        form,
        lambda d: entries_services.add_timeline_entry(
            incident=incident, by=request.user, body=d["body"], kind=d["kind"], occurred_at=d["occurred_at"]
        ),
    )
    return form, ok, "Added to the timeline."


@login_required
@require_POST
def preview_note(request, reference):
    """Markdown preview of a note as it will appear (sanitised like the stored entry)."""
    _incident_or_404(request, reference)
    html = render_markdown(request.POST.get("body", ""))
    return render(request, "incidents/partials/preview.html", {"html": html})

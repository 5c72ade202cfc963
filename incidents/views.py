"""The responder pages: dashboard, declare, incident page with its live timeline and actions, incident list,
runbook library. Views parse, call incidents.services, and render; one view serves both the full page and its
htmx partials (request.htmx), the partials being {% partialdef %} blocks of the page template.

Errors: a DomainError becomes an error on the form field it names (400 for a full page, 422 for htmx);
PermissionDenied is a 403 page; an incident the user may not see is a 404.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property, wraps
from urllib.parse import urlencode

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required as django_login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.urls import reverse
from django.utils import timezone
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
    IncidentFilterForm,
    InternalUpdateForm,
    NoteForm,
    RoleForm,
    SeverityForm,
    StatusForm,
)
from .markdown import render_markdown
from .models import ChecklistItem, ChecklistPhase, EventType, Incident, Role, Runbook, UpdateKind
from .services import checklist as checklist_services
from .services import entries as entries_services
from .services import roles as roles_services
from .services import status as status_services
from .services.details import update_incident_details
from .services.rules import may_backdate, may_edit_details
from .services.updates import post_status_update
from .statuspage import selectors as statuspage_selectors

DETAIL = "incidents/detail.html"
CHECKLIST_PHASES = [p for p in ChecklistPhase if p != ChecklistPhase.RUNBOOK]
# New timeline entries of these types change the checklists card too (the poll refreshes it).
CHECKLIST_EVENTS = {EventType.CHECKLIST_TICKED, EventType.RUNBOOK_ATTACHED}


# --- helpers ----------------------------------------------------------------------------------------------


def login_required(view):
    """Django's login_required, except that an htmx request (a poll or an action after the session expired) is
    told to load the log-in page as a whole page instead of having it swapped into a card."""
    plain = django_login_required(view)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.htmx and not request.user.is_authenticated:
            response = HttpResponse(status=200)
            back = request.htmx.current_url_abs_path or request.get_full_path()
            response["HX-Redirect"] = f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': back})}"
            return response
        return plain(request, *args, **kwargs)

    return wrapper


def _incident_or_404(request, reference: str) -> Incident:
    try:
        return selectors.incident_for_page(reference=reference, user=request.user)
    except Incident.DoesNotExist:
        raise Http404("No such incident.")


def _forbidden(request, message: str) -> HttpResponse:
    if request.htmx:
        response = render(request, "incidents/partials/flash.html", {"message": message, "level": "error"}, status=403)
        response["HX-Retarget"] = "#flash"
        response["HX-Reswap"] = "innerHTML"
        return response
    return render(request, "incidents/forbidden.html", {"message": message}, status=403)


def _apply_domain_error(form, error: DomainError) -> None:
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


def _error_status(request) -> int:
    return 422 if request.htmx else 400


def _int_param(request, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


ACTION_ITEMS_PARTIAL = "postmortems/partials/my_action_items.html"


def _action_items_enabled() -> bool:
    """The post-mortems area adds an ActionItem model and a partial that loads the user's open items itself;
    the dashboard includes it only once both exist, so the page works before and after that area lands."""
    try:
        apps.get_model("postmortems", "ActionItem")
        get_template(ACTION_ITEMS_PARTIAL)
    except (LookupError, TemplateDoesNotExist):
        return False
    return True


# --- dashboard --------------------------------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request):
    now = timezone.now()
    active, resolved = selectors.dashboard_incidents(user=request.user, now=now)
    by_severity: dict[str, dict] = {}
    for incident in active:
        group = by_severity.setdefault(incident.severity.level, {"severity": incident.severity, "incidents": []})
        group["incidents"].append(incident)
    context = {
        "groups": list(by_severity.values()),
        "active_count": len(active),
        "needs_update": [i for i in active if i.next_update_due_at and i.next_update_due_at < now],
        "recently_resolved": resolved,
        "show_action_items": _action_items_enabled(),
        "can_respond": access.can_respond(request.user),
        "now": now,
    }
    template = "incidents/dashboard.html#dashboard-body" if request.htmx else "incidents/dashboard.html"
    return render(request, template, context)


# --- declare ----------------------------------------------------------------------------------------------


@login_required
def declare(request):
    if not access.can_respond(request.user):
        return _forbidden(request, "You need the responder role to declare incidents.")
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
                return _forbidden(request, error.message)
            except DomainError as error:
                _apply_domain_error(form, error)
            else:
                messages.success(request, f"{incident.reference} declared. You are on it.")
                return redirect(incident.get_absolute_url())
        status = 400
    return render(request, "incidents/declare.html", {"form": form}, status=status)


# --- incident page ----------------------------------------------------------------------------------------


class IncidentPage:
    """Everything the incident page shows, computed lazily so a partial costs only the queries it renders."""

    def __init__(self, request, incident: Incident, *, kind: str = "", before_id: int | None = None):
        self.request = request
        self.incident = incident
        self.kind = selectors.timeline_filter(kind)
        self.before_id = before_id
        self.can_respond = access.can_respond(request.user)
        self.is_manager = access.is_manager(request.user)

    @cached_property
    def _timeline(self):
        return selectors.timeline_page(incident=self.incident, before_id=self.before_id, kind=self.kind)

    @cached_property
    def timeline(self):
        # Shown newest first by when it happened, so a back-dated entry sits where it belongs.
        entries, _ = self._timeline
        return sorted(entries, key=lambda e: (e.occurred_at, e.id), reverse=True)

    @property
    def has_older(self) -> bool:
        return self._timeline[1]

    @property
    def oldest_id(self) -> int | None:
        entries = self._timeline[0]
        return min(e.id for e in entries) if entries else None

    @property
    def newest_id(self) -> int:
        entries = self._timeline[0]
        return max((e.id for e in entries), default=0)

    @cached_property
    def _checklist(self):
        return selectors.checklist_items(incident=self.incident)

    @cached_property
    def checklist_phases(self):
        items = self._checklist
        phases = []
        for phase in CHECKLIST_PHASES:
            phase_items = [i for i in items if i.phase == phase]
            if phase_items:
                done = sum(1 for i in phase_items if i.is_checked)
                phases.append({"phase": phase, "items": phase_items, "done": done, "total": len(phase_items)})
        return phases

    @cached_property
    def runbook_sections(self):
        items = [i for i in self._checklist if i.phase == ChecklistPhase.RUNBOOK]
        return [
            {"runbook": link.runbook, "items": [i for i in items if i.runbook_id == link.runbook_id]}
            for link in self.attached_runbooks
        ]

    @cached_property
    def attached_runbooks(self):
        return selectors.attached_runbooks(incident=self.incident)

    @cached_property
    def five_whys(self):
        return selectors.five_whys_of(incident=self.incident)

    @cached_property
    def updates(self):
        return selectors.recent_updates(incident=self.incident)

    @cached_property
    def can_edit_details(self) -> bool:
        return self.can_respond and may_edit_details(
            self.request.user, self.incident, current_roles=self.incident.current_roles
        )

    @cached_property
    def public_services(self):
        return list(statuspage_selectors.public_services().order_by("name"))

    @cached_property
    def latest_published(self):
        return statuspage_selectors.latest_published_update(self.incident)

    @cached_property
    def current_component_states(self) -> dict[int, str]:
        latest = self.latest_published
        return {c.service_id: c.state for c in latest.public_component_states} if latest else {}

    @cached_property
    def needs_public_resolution(self) -> bool:
        return statuspage_selectors.needs_public_resolution(self.incident, self.latest_published)

    @cached_property
    def communications_lead(self):
        return next((a.holder for a in self.incident.current_roles if a.role == Role.COMMUNICATIONS_LEAD), None)

    @cached_property
    def can_backdate(self) -> bool:
        # The rule add_timeline_entry applies, asked with the roles the page already loaded.
        return may_backdate(self.request.user, self.incident, current_roles=self.incident.current_roles)

    @cached_property
    def urls(self) -> dict[str, str]:
        """Each action's URL, reversed once per page rather than twice per form (and per checklist item)."""
        ref = {"reference": self.incident.reference}
        names = [
            "acknowledge",
            "change_status",
            "change_severity",
            "assign_role",
            "attach_runbook",
            "record_five_whys",
            "post_internal_update",
            "post_external_update",
            "publish_resolution",
            "edit_details",
            "add_note",
            "preview_note",
        ]
        urls = {name: reverse(f"incidents:{name}", kwargs=ref) for name in names}
        # tick_checklist_item is <detail>/checklist/<id>/; the template appends the id.
        urls["checklist"] = reverse("incidents:tick_checklist_item", kwargs={**ref, "item_id": 0})[:-2]
        return urls

    @cached_property
    def is_acknowledged(self) -> bool:
        return self.incident.acknowledged_at is not None

    def timeline_url(self, **params) -> str:
        query = {"kind": self.kind, **params}
        parts = "&".join(f"{k}={v}" for k, v in query.items() if v not in ("", None))
        return f"{self.incident.get_absolute_url()}?{parts}" if parts else self.incident.get_absolute_url()

    @property
    def poll_url(self) -> str:
        return self.timeline_url(after=self.newest_id)

    @property
    def older_url(self) -> str:
        return self.timeline_url(before=self.oldest_id)


def _forms(page: IncidentPage, overrides: dict) -> dict:
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


def _external_form(page: IncidentPage, data=None, *, auto_id=None) -> ExternalUpdateForm:
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


def _detail_context(request, incident: Incident, *, overrides: dict | None = None, page: IncidentPage | None = None):
    page = page or IncidentPage(request, incident)
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
    page = IncidentPage(request, incident, kind=kind, before_id=_int_param(request, "before"))
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
    page = IncidentPage(request, incident, kind=kind)
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
                return _forbidden(request, "You can read this incident but need the responder role to act on it.")
            try:
                form, ok, message = perform(request, incident, **kwargs)
            except PermissionDenied as error:
                return _forbidden(request, error.message)
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
        _apply_domain_error(form, error)
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


@_action("updates-card", "internal_form")
def post_internal_update(request, incident):
    form = InternalUpdateForm(request.POST)
    ok = _try(
        form,
        lambda d: post_status_update(
            incident=incident,
            kind=UpdateKind.INTERNAL,
            status=d["status"],
            by=request.user,
            what_we_know=d["what_we_know"],
            what_we_are_doing=d["what_we_are_doing"],
            impact=d["impact"],
            eta=d["eta"],
            next_update_at=d["next_update_at"],
        ),
    )
    return form, ok, "Internal update posted."


# The internal and external update forms share field names on one page; their ids must differ for the labels.
EXTERNAL_FORM_IDS = "id_external_%s"
RESOLUTION_FORM_IDS = "id_resolution_%s"


def _post_external_update(request, incident, *, auto_id):
    form = _external_form(IncidentPage(request, incident), request.POST, auto_id=auto_id)
    ok = _try(
        form,
        lambda d: post_status_update(
            incident=incident,
            kind=UpdateKind.EXTERNAL,
            status=d["status"],
            by=request.user,
            title=d["title"],
            description=d["description"],
            workaround=d["workaround"],
            component_states=form.component_states(),
            next_update_at=d["next_update_at"],
            publish=d["publish"],
        ),
    )
    return form, ok, "Status page update posted."


@_action("updates-card", "external_form")
def post_external_update(request, incident):
    return _post_external_update(request, incident, auto_id=EXTERNAL_FORM_IDS)


@_action("status-card", "resolution_form")
def publish_resolution(request, incident):
    """The prompt after resolving or closing: publish the prefilled "Resolved" status-page update."""
    return _post_external_update(request, incident, auto_id=RESOLUTION_FORM_IDS)


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


# --- incident list ----------------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(incident: Incident) -> str:
    micros = (incident.declared_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{incident.number}"


def decode_cursor(value: str):
    try:
        micros, number = value.split("-", 1)
        return EPOCH + timedelta(microseconds=int(micros)), int(number)
    except (ValueError, OverflowError):
        return None


@login_required
@require_GET
def incident_list(request):
    form = IncidentFilterForm(request.GET or None)
    filters = form.filters() if form.is_valid() else {}
    status = 200 if form.is_valid() or not form.is_bound else 400
    direction, cursor = "older", None
    if request.GET.get("after"):
        cursor = decode_cursor(request.GET["after"])
    elif request.GET.get("before"):
        direction, cursor = "newer", decode_cursor(request.GET["before"])
    rows, has_more = selectors.incident_list(user=request.user, filters=filters, cursor=cursor, direction=direction)
    query = request.GET.copy()
    for key in ("after", "before"):
        query.pop(key, None)
    base = query.urlencode()
    has_older = has_more if direction == "older" else cursor is not None
    has_newer = (direction == "older" and cursor is not None) or (direction == "newer" and has_more)
    context = {
        "form": form,
        "incidents": rows,
        "older_url": f"?{base}&after={encode_cursor(rows[-1])}" if rows and has_older else "",
        "newer_url": f"?{base}&before={encode_cursor(rows[0])}" if rows and has_newer else "",
        "first_url": f"?{base}" if cursor is not None else "",
    }
    template = "incidents/list.html#results" if request.htmx else "incidents/list.html"
    return render(request, template, context, status=status)


# --- runbooks ---------------------------------------------------------------------------------------------


@login_required
@require_GET
def runbook_list(request):
    return render(request, "incidents/runbook_list.html", {"runbooks": selectors.runbooks()})


@login_required
@require_GET
def runbook_detail(request, slug):
    try:
        runbook = selectors.runbook_for_page(slug=slug)
    except Runbook.DoesNotExist:
        raise Http404("No such runbook.")
    return render(
        request, "incidents/runbook_detail.html", {"runbook": runbook, "notes_html": render_markdown(runbook.notes)}
    )

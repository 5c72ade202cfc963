"""The pages that list: the dashboard, the incident list (filtered, with cursor pagination) and the runbook
library. Like views.py, they parse, call incidents.selectors and render; htmx asks for their results partials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.apps import apps
from django.http import Http404
from django.shortcuts import render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import access, selectors
from .forms import (
    IncidentFilterForm,
)
from .interface import login_required
from .markdown import render_markdown
from .models import Incident, Runbook

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

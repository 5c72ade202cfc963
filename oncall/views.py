"""On-call pages: who is on call now, rotation calendars, creating overrides, calendar (ICS) feeds.

Views parse, call oncall.services / oncall.selectors, and render; one view serves the full page and its htmx
partial. A DomainError becomes an error on the form field it names (400 for a page, 422 for htmx).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from incidents import access
from incidents.errors import DomainError
from incidents.interface import forbidden

from . import selectors, services
from .forms import CalendarWeeksForm, OverrideForm
from .ics import build_calendar
from .models import CalendarFeed, Override, Person, Rotation
from .paging import selectors as paging_selectors

FEED_PAST = timedelta(days=7)
FEED_FUTURE = timedelta(weeks=12)


@login_required
@require_GET
def on_call_now(request):
    """Every team: who holds each slot now, until when, and who takes over at the next handoff."""
    now = timezone.now()
    context = {
        "teams": selectors.on_call_now(at=now),
        "now": now,
        "can_override": access.can_respond(request.user),
        "channel_warning": "" if request.htmx else paging_selectors.channel_warning(),
    }
    template = "oncall/now.html#teams" if request.htmx else "oncall/now.html"
    return render(request, template, context)


@login_required
@require_GET
def rotation_calendar(request, pk: int):
    """A rotation's shifts for the coming weeks, one row per shift like the guide's table, overrides marked."""
    rotation = get_object_or_404(Rotation.objects.select_related("team"), pk=pk)
    form = CalendarWeeksForm(request.GET)
    params = form.cleaned_data if form.is_valid() else {}
    weeks = params.get("weeks") or 4
    first_day = params.get("start") or timezone.now().astimezone(rotation.zone).date()
    start = datetime.combine(first_day, time(0), tzinfo=rotation.zone)
    plan, shifts = selectors.rotation_calendar(rotation, start=start, weeks=weeks)
    context = {
        "rotation": rotation,
        "rows": selectors.calendar_rows(plan, shifts),
        "weeks": weeks,
        "first_day": first_day,
        "previous_day": first_day - timedelta(weeks=weeks),
        "next_day": first_day + timedelta(weeks=weeks),
        "gaps": [shift for shift in shifts if shift.is_gap and shift.index is not None],
        "can_override": access.can_respond(request.user),
        "is_manager": access.is_manager(request.user),
        "my_person_id": getattr(services.person_for(request.user), "pk", None),
        "errors": form.errors,
    }
    template = "oncall/rotation_calendar.html#calendar" if request.htmx else "oncall/rotation_calendar.html"
    return render(request, template, context)


def _override_choices(user):
    """Managers cover for anyone in any rotation; a responder only for themself in their teams' rotations."""
    rotations = Rotation.objects.filter(is_active=True).select_related("team")
    if access.is_manager(user):
        return rotations, Person.objects.filter(is_active=True), None
    me = services.person_for(user)
    if me is None:
        return rotations.none(), Person.objects.none(), None
    return rotations.filter(team__members=me).distinct(), Person.objects.filter(pk=me.pk), me


@login_required
def override_create(request):
    if not access.can_respond(request.user):
        return forbidden(request, "Only responders and managers can create overrides.")
    rotations, people, me = _override_choices(request.user)
    status = 200
    if request.method == "POST":
        form = OverrideForm(request.POST, rotations=rotations, people=people)
        if form.is_valid():
            data = form.cleaned_data
            try:
                override = services.create_override(
                    rotation=data["rotation"],
                    slot=data["slot"],
                    person=data["person"],
                    start=data["start"],
                    end=data["end"],
                    reason=data["reason"],
                    by=request.user,
                )
            except DomainError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                messages.success(request, f"Override saved: {override}.")
                url = reverse("oncall:rotation", args=[override.rotation_id])
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        status = 422 if request.htmx else 400
    else:
        initial = {"person": me.pk if me else None, "rotation": request.GET.get("rotation")}
        form = OverrideForm(initial=initial, rotations=rotations, people=people)
    no_person = me is None and not access.is_manager(request.user)
    template = "oncall/override_form.html#override-form" if request.htmx else "oncall/override_form.html"
    return render(request, template, {"form": form, "no_person": no_person}, status=status)


@login_required
@require_POST
def override_cancel(request, pk: int):
    override = get_object_or_404(Override, pk=pk)
    try:
        services.cancel_override(override=override, by=request.user)
    except DomainError as error:
        return forbidden(request, error.message)
    messages.success(request, "Override cancelled.")
    url = reverse("oncall:rotation", args=[override.rotation_id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
def calendar_feeds(request):
    """The signed-in person's secret feed URLs (their shifts, and each rotation), with a way to rotate them."""
    me = services.person_for(request.user)
    feed = services.calendar_feed_for(me) if me is not None else None
    rotations = Rotation.objects.filter(is_active=True).select_related("team")
    return render(request, "oncall/calendar_feeds.html", {"person": me, "feed": feed, "rotations": rotations})


@login_required
@require_POST
def calendar_rotate(request):
    me = services.person_for(request.user)
    if me is None:
        raise Http404("No directory entry is linked to your account.")
    services.rotate_calendar_token(person=me, by=request.user)
    messages.success(request, "New calendar links created; the old ones no longer work.")
    return redirect("oncall:calendar_feeds")


def _ics(body: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, max-age=300"
    return response


def _feed_or_404(token: str) -> CalendarFeed:
    feed = CalendarFeed.objects.select_related("person").filter(token=token).first()
    if feed is None or not feed.person.is_active:
        raise Http404("Unknown calendar link.")
    return feed


@require_GET
def person_ics(request, token: str):
    """The person's own shifts (overrides included). The token in the URL is the credential."""
    feed = _feed_or_404(token)
    now = timezone.now()
    shifts = selectors.person_shifts(feed.person, start=now - FEED_PAST, end=now + FEED_FUTURE)
    return _ics(build_calendar(f"On-call: {feed.person}", shifts), "on-call.ics")


def _rotation_ics(rotation: Rotation) -> HttpResponse:
    now = timezone.now()
    shifts = selectors.rotation_feed_shifts(rotation, start=now - FEED_PAST, end=now + FEED_FUTURE)
    return _ics(build_calendar(f"On-call: {rotation}", shifts), f"rotation-{rotation.pk}.ics")


@require_GET
def rotation_ics_by_token(request, token: str, pk: int):
    _feed_or_404(token)
    return _rotation_ics(get_object_or_404(Rotation.objects.select_related("team"), pk=pk))


@login_required
@require_GET
def rotation_ics(request, pk: int):
    return _rotation_ics(get_object_or_404(Rotation.objects.select_related("team"), pk=pk))

"""The public status page and the subscriber pages. No login anywhere here, and nothing here depends on who
is asking, so the page can be cached publicly (no session, no CSRF cookie, no user in the template)."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import condition, require_http_methods, require_safe

from incidents.errors import DomainError

from . import rollups, selectors, services, tokens
from .calendar import maintenance_calendar
from .feeds import StatusUpdatesFeed
from .forms import SubscribeForm

# Per client address; generous for people, tight enough that the form cannot be used to mail-bomb.
SUBSCRIBE_LIMIT = 10
SUBSCRIBE_WINDOW_SECONDS = 3600
# The key changes with every change the page shows, so this only bounds memory, not staleness.
PAGE_CACHE_SECONDS = 600


def _fingerprint(request) -> selectors.Fingerprint:
    # condition() asks for the ETag and Last-Modified separately; compute both with one query.
    if not hasattr(request, "_status_fingerprint"):
        request._status_fingerprint = selectors.status_page_fingerprint()
    return request._status_fingerprint


def _etag(request, *args, **kwargs):
    return _fingerprint(request).etag


def _last_modified(request, *args, **kwargs):
    return _fingerprint(request).last_modified


@require_safe
@cache_control(public=True, max_age=30)
@condition(etag_func=_etag, last_modified_func=_last_modified)
def index(request):
    fingerprint = _fingerprint(request)
    # Rendered once per change and shared by every visitor (the page is the same for everyone): during an
    # incident most requests are first visits without a validator, and they cost the fingerprint query only.
    key = f"statuspage:index:{fingerprint.etag}"
    html = cache.get(key)
    if html is None:
        # The page shows when its content last changed (not when it was rendered), so a 304 never leaves
        # a visitor looking at a stale time.
        page = selectors.status_page()
        context = {"page": page, "history": rollups.history(page), "changed_at": fingerprint.changed_at}
        html = render_to_string("statuspage/index.html", context, request=request)
        cache.set(key, html, PAGE_CACHE_SECONDS)
    return HttpResponse(html)


# Feed readers poll; the page's fingerprint covers everything the feed shows, so it validates the feed too.
feed = require_safe(
    cache_control(public=True, max_age=60)(
        condition(etag_func=_etag, last_modified_func=_last_modified)(StatusUpdatesFeed())
    )
)


@require_safe
@cache_control(public=True, max_age=300)
@condition(etag_func=_etag, last_modified_func=_last_modified)
def maintenance_ics(request):
    response = HttpResponse(maintenance_calendar(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="maintenance.ics"'
    return response


def _client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")


def _over_limit(request) -> bool:
    key = f"statuspage:subscribe:{_client_address(request)}"
    cache.add(key, 0, SUBSCRIBE_WINDOW_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, SUBSCRIBE_WINDOW_SECONDS)
        count = 1
    return count > SUBSCRIBE_LIMIT


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request):
    status = 200
    if request.method == "POST":
        form = SubscribeForm(request.POST)
        if _over_limit(request):
            form.is_valid()
            form.add_error(None, "Too many subscription requests from your network. Try again in an hour.")
            status = 429
        elif form.is_valid():
            if form.is_bot:
                return redirect("statuspage:subscribe_sent")
            data = form.cleaned_data
            try:
                services.request_subscription(
                    email=data["email"],
                    all_services=data["scope"] == "all",
                    service_ids=[service.pk for service in data["services"]],
                )
            except DomainError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                # The same answer whether or not the address was subscribed already.
                return redirect("statuspage:subscribe_sent")
        if status == 200:
            status = 400
    else:
        form = SubscribeForm()
    return render(request, "statuspage/subscribe.html", {"form": form}, status=status)


@require_safe
def subscribe_sent(request):
    return render(request, "statuspage/subscribe_sent.html")


# The signed token in the URL is the credential for these two; a CSRF cookie would add nothing and would
# break the one-click unsubscribe POST a mail client sends without cookies (RFC 8058).
@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request, token):
    if request.method != "POST":
        try:
            tokens.read_confirm_token(token)
        except tokens.InvalidToken as error:
            return render(request, "statuspage/confirm.html", {"error": str(error)}, status=400)
        # A button, not a GET side effect: mail scanners that follow links must not confirm for anyone.
        return render(request, "statuspage/confirm.html", {"token": token})
    try:
        subscriber = services.confirm_subscription(token=token)
    except DomainError as error:
        return render(request, "statuspage/confirm.html", {"error": error.message}, status=400)
    return render(
        request,
        "statuspage/confirm.html",
        {"subscriber": subscriber, "services": subscriber.services.order_by("name"), "confirmed": True},
    )


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    if request.method != "POST":
        try:
            tokens.read_unsubscribe_token(token)
        except tokens.InvalidToken as error:
            return render(request, "statuspage/unsubscribe.html", {"error": str(error)}, status=400)
        return render(request, "statuspage/unsubscribe.html", {"token": token})
    try:
        services.unsubscribe(token=token)
    except DomainError as error:
        return render(request, "statuspage/unsubscribe.html", {"error": error.message}, status=400)
    return render(request, "statuspage/unsubscribe.html", {"done": True})

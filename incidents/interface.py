"""The small kit every interface shares (the pages of incidents, on-call and post-mortems, and their admins), so
that a refusal, a form error or an admin action reads and behaves the same everywhere.

Pages: `login_required` (htmx-aware), `forbidden` (a 403 that htmx shows in the page's flash area),
`apply_domain_error` and `error_status`. Admin: `ReadOnlyAdmin` and `ReadOnlyInline` for history that only the
services write, and `run_admin_action` for actions that call a service once per selected row.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required as django_login_required
from django.http import HttpResponse
from django.shortcuts import render, resolve_url
from django.urls import reverse

from .errors import DomainError

# --- pages -----------------------------------------------------------------------------------------------------


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


def forbidden(
    request, message: str, *, back: str = "incidents:dashboard", back_label: str = "Back to the dashboard"
) -> HttpResponse:
    """403. An htmx request gets the message in the page's flash area (base.html's #flash), not a whole page
    swapped into a card; a page request gets the "Not allowed" page with a link back (`back`, a URL name)."""
    if request.htmx:
        response = render(request, "incidents/partials/flash.html", {"message": message, "level": "error"}, status=403)
        response["HX-Retarget"] = "#flash"
        response["HX-Reswap"] = "innerHTML"
        return response
    context = {"message": message, "back_url": reverse(back), "back_label": back_label}
    return render(request, "incidents/forbidden.html", context, status=403)


def apply_domain_error(form, error: DomainError) -> None:
    """A service's refusal as an error on the form field it names (the whole form when it names none the form has)."""
    form.add_error(error.field if error.field in form.fields else None, error.message)


def error_status(request) -> int:
    """A form with errors answers 422 to htmx (which swaps it in place) and 400 to a page request."""
    return 422 if request.htmx else 400


# --- admin -----------------------------------------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """History or state that only the services write: viewable by whoever may view it, never added, changed or
    deleted through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """Rows of an object's history shown on its admin page, never added or edited there. Set `fields`; they are
    all read-only."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def run_admin_action(
    modeladmin,
    request,
    queryset,
    action: Callable,
    *,
    done: Callable[[int], str],
    label: Callable[[object], str] = str,
) -> int:
    """Call a service for each selected row. A row the service refuses gets an error message naming it
    (`label`); the others are counted in one success message (`done(count)`). Returns the count."""
    count = 0
    for obj in queryset:
        try:
            action(obj)
        except DomainError as error:
            modeladmin.message_user(request, f"{label(obj)}: {error.message}", level=messages.ERROR)
        else:
            count += 1
    if count:
        modeladmin.message_user(request, done(count), level=messages.SUCCESS)
    return count

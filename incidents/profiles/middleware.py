"""Activates the signed-in user's time zone for the request (pages and forms use it; see zones.py).

The zone's name is kept in the session (written at log-in and whenever the user changes it), so a page request
costs no query for it. A session from before profiles existed is filled in on its first request."""

from django.utils import timezone

from .services import SESSION_KEY, profile_zone_name
from .zones import zone

# Event streams (incidents.live) show no times and stay open for minutes: reading the session here would hold a
# database connection in the request's thread for as long.
SKIP_PREFIXES = ("/events/",)
# The public status page is the same for everyone (cached, no "Vary: Cookie"): it shows UTC and reads no session.
PUBLIC_PREFIX, STAFF_PREFIX = "/status/", "/status/manage/"


class TimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.time_zone_unknown = False
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        tz = None
        path = request.path_info
        if path.startswith(SKIP_PREFIXES) or (path.startswith(PUBLIC_PREFIX) and not path.startswith(STAFF_PREFIX)):
            return self.get_response(request)
        if session is not None and user is not None and user.is_authenticated:
            name = session.get(SESSION_KEY)
            if name is None:
                name = session[SESSION_KEY] = profile_zone_name(user)
            tz = zone(name)
            request.time_zone_unknown = not name
        if tz is not None:
            timezone.activate(tz)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

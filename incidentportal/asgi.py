"""ASGI entry point: `uvicorn incidentportal.asgi:application` (the Procfile's web process; in production the
process the proxy sends /events/ to).

The live pages' event streams (/events/, incidents.live) stay open for minutes, hundreds at a time. They are served
by a Django handler with only the middleware they need, all of it lazy (security headers, the session, the user
and its second-factor state): the view reads the session in a bounded pool of threads and lets go of the database
connection before streaming, so open streams hold none. Every other URL gets the full middleware.
"""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")

EVENTS_PREFIX = "/events/"
EVENTS_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
]


class EventsHandler(ASGIHandler):
    """Django with EVENTS_MIDDLEWARE (in the order settings.MIDDLEWARE gives them) instead of all of it."""

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in full if path in EVENTS_MIDDLEWARE]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


portal = get_asgi_application()
events = EventsHandler()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope.get("path", "").startswith(EVENTS_PREFIX):
        return await events(scope, receive, send)
    return await portal(scope, receive, send)

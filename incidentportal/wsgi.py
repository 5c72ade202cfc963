"""WSGI entry point: `gunicorn incidentportal.wsgi`.

Inbound webhooks (/api/v1/integrations/) are machine-to-machine POSTs: no session, cookie, CSRF token or HTML,
and alert storms make them the busiest URL of the portal. They are served by a Django handler with only the
middleware they need: SecurityMiddleware (HTTPS redirect, HSTS, nosniff), CommonMiddleware (Content-Length) and
the audit context (request id and address on everything the request writes); the URLconf, views and error
handling are the same as for every other URL. The browser middleware (sessions, authentication, CSRF, messages,
CSP, htmx, axes) cost more per event than storing the event did.
"""

import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")

# Heartbeat pings are the same kind of traffic: every cron job of a company, no browser.
WEBHOOK_PREFIXES = ("/api/v1/integrations/", "/api/v1/heartbeats/")
WEBHOOK_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",  # Content-Length, so senders' keep-alive connections stay open
    "incidents.audit.middleware.AuditContextMiddleware",
]


class WebhookHandler(WSGIHandler):
    """Django with WEBHOOK_MIDDLEWARE (in the order settings.MIDDLEWARE gives them) instead of all of it."""

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in full if path in WEBHOOK_MIDDLEWARE]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class Dispatcher:
    """Webhook URLs to the lean handler, everything else to the full one."""

    def __init__(self, portal, webhooks):
        self.portal = portal
        self.webhooks = webhooks

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(WEBHOOK_PREFIXES):
            return self.webhooks(environ, start_response)
        return self.portal(environ, start_response)


portal = get_wsgi_application()
application = Dispatcher(portal, WebhookHandler())

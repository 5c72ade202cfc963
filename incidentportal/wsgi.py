"""WSGI entry point: `gunicorn incidentportal.wsgi`.

Inbound webhooks (/api/v1/integrations/) are machine-to-machine POSTs: no session, cookie, CSRF token or HTML,
and alert storms make them the busiest URL of the portal. They are served by a Django handler with only the
middleware they need: SecurityMiddleware (HTTPS redirect, HSTS, nosniff), CommonMiddleware (Content-Length) and
the audit context (request id and address on everything the request writes); the URLconf, views and error
handling are the same as for every other URL. The browser middleware (sessions, authentication, CSRF, messages,
CSP, htmx, axes) cost more per event than storing the event did.
"""

import io
import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

from incidents.alerting import conf as alerting_conf  # settings read at call time: safe before setup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")

# Heartbeat pings are the same kind of traffic: every cron job of a company, no browser.
WEBHOOK_PREFIXES = ("/api/v1/integrations/", "/api/v1/heartbeats/")
# /healthz and /metrics are answered by the same lean handler: load balancers and Prometheus call them often.
LEAN_PATHS = ("/healthz", "/metrics")
WEBHOOK_MIDDLEWARE = [
    "oncall.health.metrics.RequestMetricsMiddleware",
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


def buffer_chunked_body(environ, *, limit: int) -> None:
    """Django reads exactly CONTENT_LENGTH bytes of a request body, so a `Transfer-Encoding: chunked` request
    (no Content-Length) reads as empty. When the server has de-chunked the stream and marks its end
    (wsgi.input_terminated, as gunicorn does), read it here, at most limit + 1 bytes, and hand Django the bytes with
    their length: a body over the limit then reaches the view as too large (413), never silently cut."""
    if environ.get("CONTENT_LENGTH") not in (None, ""):
        return
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower() or not environ.get("wsgi.input_terminated"):
        return
    body = environ["wsgi.input"].read(limit + 1)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


class Dispatcher:
    """Webhook URLs to the lean handler, everything else to the full one."""

    def __init__(self, portal, webhooks):
        self.portal = portal
        self.webhooks = webhooks

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(WEBHOOK_PREFIXES):
            buffer_chunked_body(environ, limit=alerting_conf.get("ALERTING_MAX_BODY_BYTES"))
            return self.webhooks(environ, start_response)
        if environ.get("PATH_INFO", "") in LEAN_PATHS:
            return self.webhooks(environ, start_response)
        buffer_chunked_body(environ, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440)
        return self.portal(environ, start_response)


portal = get_wsgi_application()
# The common heartbeat ping is answered in one statement before the lean handler (incidentportal/heartbeat_pings.py).
from incidentportal.heartbeat_pings import HeartbeatPings  # noqa: E402 -- imports models: after the setup above

application = Dispatcher(portal, HeartbeatPings(WebhookHandler()))

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
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.utils.module_loading import import_string

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
    """Django with WEBHOOK_MIDDLEWARE (in the order settings.MIDDLEWARE gives them) instead of all of it. The chain is
    built here the way BaseHandler.load_middleware builds it for synchronous middleware (all of these are), from
    that list: settings.MIDDLEWARE is never swapped, so no other handler loading at the same time sees a partial
    list."""

    def middleware_paths(self) -> list[str]:
        return [path for path in settings.MIDDLEWARE if path in WEBHOOK_MIDDLEWARE]

    def load_middleware(self, is_async=False):
        if is_async:
            raise ImproperlyConfigured("The webhook handler is WSGI (synchronous) only.")
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(self.middleware_paths()):
            middleware = import_string(path)
            if not getattr(middleware, "sync_capable", True):
                raise ImproperlyConfigured(f"{path} cannot run synchronously.")
            try:
                instance = middleware(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


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
            buffer_chunked_body(environ, limit=settings.ALERTING_MAX_BODY_BYTES)
            return self.webhooks(environ, start_response)
        if environ.get("PATH_INFO", "") in LEAN_PATHS:
            return self.webhooks(environ, start_response)
        buffer_chunked_body(environ, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440)
        return self.portal(environ, start_response)


portal = get_wsgi_application()
# The common heartbeat ping is answered in one statement before the lean handler (incidentportal/heartbeat_pings.py).
from incidentportal.heartbeat_pings import HeartbeatPings  # noqa: E402 -- imports models: after the setup above

application = Dispatcher(portal, HeartbeatPings(WebhookHandler()))

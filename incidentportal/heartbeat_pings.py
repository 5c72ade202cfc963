"""The common heartbeat ping without Django's request handling.

Every cron job of a company pings, so `GET|POST|HEAD /api/v1/heartbeats/<uuid>/` is the portal's most frequent
request; its common case (an active heartbeat, no alert open, under its rate limit) is one prepared UPDATE
(incidents.alerting.heartbeats.ping_fast). This WSGI app answers that case itself, with what the lean webhook handler
would have done around it: the request signals (database connections closed when obsolete or broken), the host
checked against ALLOWED_HOSTS, SecurityMiddleware's redirect and headers, the X-Request-ID the audit middleware adds,
the request metrics. Everything else (unknown or paused heartbeats, an open alert to resolve, /start, /fail, the rate
limit's refusals, a bad host, a redirect to HTTPS, a database error) goes to the lean Django handler unchanged, which
runs the view and so the same rules.
"""

from __future__ import annotations

import re
import time
import uuid

from django.core import signals
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.db import DatabaseError
from django.middleware.security import SecurityMiddleware
from django.utils import timezone

from incidents.alerting import heartbeat_views, heartbeats
from oncall.health.metrics import REQUEST_SECONDS, REQUESTS

PING_PATH = re.compile(
    r"/api/v1/heartbeats/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/"
)
METHODS = frozenset({"GET", "POST", "HEAD"})
HANDLER = "heartbeats:ping"  # the URL name, as RequestMetricsMiddleware labels the same request


class _Body(list):
    """The response body; closing it (the server does, after sending) ends the request like Django's does."""

    def close(self):
        signals.request_finished.send(sender=HeartbeatPings)


class HeartbeatPings:
    def __init__(self, fallback):
        self.fallback = fallback
        self.security = SecurityMiddleware(lambda request: None)

    def __call__(self, environ, start_response):
        match = PING_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") not in METHODS:
            return self.fallback(environ, start_response)
        started = time.perf_counter()
        signals.request_started.send(sender=HeartbeatPings, environ=environ)
        request = WSGIRequest(environ)
        try:
            request.get_host()
        except DisallowedHost:
            return self._delegate(environ, start_response)
        if self.security.process_request(request) is not None:  # HTTPS redirect
            return self._delegate(environ, start_response)
        public_id = uuid.UUID(match[1])
        now = timezone.now()
        if heartbeat_views.refused_now(public_id, heartbeats.rate_window(now)[0]):
            return self._delegate(environ, start_response)
        try:
            done = heartbeats.ping_fast(public_id, now=now)
        except DatabaseError:
            done = False  # the view's request closes a broken connection and tries again on a new one
        if not done:
            return self._delegate(environ, start_response)
        response = heartbeat_views.text_response(200, "OK")
        response.headers["X-Request-ID"] = uuid.uuid4().hex
        response = self.security.process_response(request, response)
        body = response.content
        response.headers["Content-Length"] = str(len(body))
        start_response(f"200 {response.reason_phrase}", list(response.items()))
        REQUESTS.labels(HANDLER, request.method, "200").inc()
        REQUEST_SECONDS.labels(HANDLER).observe(time.perf_counter() - started)
        return _Body([body])

    def _delegate(self, environ, start_response):
        signals.request_finished.send(sender=HeartbeatPings)
        return self.fallback(environ, start_response)

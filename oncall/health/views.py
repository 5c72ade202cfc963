"""/healthz and /metrics: served by the lean WSGI handler (incidentportal.wsgi), no session or CSRF."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import choose_encoder

from incidents.alerting import heartbeats as portal_heartbeats

from . import checks, conf, metrics

log = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request):
    """200 when the database and broker answer, every timer ticked recently and the page outbox drains; else 503.
    The body says which check failed and why."""
    healthy, body = checks.report()
    if not body["checks"]["timers"].get("ok", True) and body["checks"]["database"]["ok"]:
        # A timer is stale. If the timers queue itself has stopped, the missed-heartbeat check (a timer too) is not
        # running either: open the portal timers' missed-heartbeat alerts from here (once: rows are claimed).
        try:
            portal_heartbeats.open_missed_tick_alerts()
        except DatabaseError:
            log.exception("could not open the missed-heartbeat alerts of the portal's timers")
    return JsonResponse(body, status=200 if healthy else 503)


def _networks():
    found = []
    for part in conf.get("METRICS_ALLOWED_IPS").split(","):
        part = part.strip()
        if part:
            found.append(ipaddress.ip_network(part, strict=False))
    return found


def metrics_allowed(request) -> bool:
    """A configured bearer token, or an address in METRICS_ALLOWED_IPS. Nothing configured: nobody."""
    token = conf.get("METRICS_BEARER_TOKEN")
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _networks())


@never_cache
@require_safe
def prometheus_metrics(request):
    if not metrics_allowed(request):
        configured = conf.get("METRICS_BEARER_TOKEN") or conf.get("METRICS_ALLOWED_IPS")
        message = (
            "Send the metrics bearer token, or scrape from an allowed address."
            if configured
            else "Metrics are off: set METRICS_BEARER_TOKEN or METRICS_ALLOWED_IPS."
        )
        response = HttpResponse(message + "\n", status=403, content_type="text/plain; charset=utf-8")
        if conf.get("METRICS_BEARER_TOKEN"):
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # The format Prometheus asks for in Accept (its 0.0.4 text format when it names none).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(metrics.scrape_registry()), content_type=content_type)

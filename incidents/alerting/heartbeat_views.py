"""Heartbeat ping URLs: /api/v1/heartbeats/<uuid>/ (and /start, /fail). curl-friendly: GET or POST, no credentials
but the unguessable UUID, a plain-text answer. Rate-limited per heartbeat, so a runaway loop cannot flood the
database."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import heartbeats, ratelimit

ACTIONS = {"ping": heartbeats.ping, "start": heartbeats.start, "fail": heartbeats.fail}


def _text(status: int, body: str, **headers) -> HttpResponse:
    response = HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8", headers=headers)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_http_methods(["GET", "POST", "HEAD"])
def heartbeat_ping(request, public_id, action: str = "ping"):
    verdict = ratelimit.hit(f"heartbeat:{public_id}", settings.HEARTBEAT_RATE_LIMIT_PER_MINUTE)
    if not verdict.allowed:
        return _text(429, "Too many pings for this heartbeat; slow down.", **{"Retry-After": str(verdict.retry_after)})
    result = ACTIONS[action](public_id)
    if not result.found:
        return _text(404, "No heartbeat has this URL.")
    return _text(200, "OK")

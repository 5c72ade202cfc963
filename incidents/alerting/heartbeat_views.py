"""Heartbeat ping URLs: /api/v1/heartbeats/<uuid>/ (and /start, /fail). curl-friendly: GET or POST, no credentials
but the unguessable UUID, a plain-text answer. Rate-limited per heartbeat (HEARTBEAT_RATE_LIMIT_PER_MINUTE, counted
in the heartbeat's row by the ping's own statement), so a runaway loop cannot flood the database."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import heartbeats

ACTIONS = {"ping": heartbeats.ping, "start": heartbeats.start, "fail": heartbeats.fail}


def text_response(status: int, body: str, **headers) -> HttpResponse:
    response = HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8", headers=headers)
    response["Cache-Control"] = "no-store"
    return response


# Heartbeats refused in the current rate-limit window, by this process: a runaway loop is answered 429 without a
# database round trip until its window ends (the count in the row only grows within a window, so this is exact).
_refused: dict = {}
_REFUSED_MAX = 10_000


def refused_now(public_id, window: int) -> bool:
    return _refused.get(public_id) == window


@csrf_exempt
@require_http_methods(["GET", "POST", "HEAD"])
def heartbeat_ping(request, public_id, action: str = "ping"):
    now = timezone.now()
    window, retry_after = heartbeats.rate_window(now)
    if refused_now(public_id, window):
        return _too_many(retry_after)
    result = ACTIONS[action](public_id, now=now)
    if not result.found:
        return text_response(404, "No heartbeat has this URL.")
    if result.limited:
        if len(_refused) >= _REFUSED_MAX:
            _refused.clear()
        _refused[public_id] = window
        return _too_many(result.retry_after)
    return text_response(200, "OK")


def _too_many(retry_after: int) -> HttpResponse:
    return text_response(429, "Too many pings for this heartbeat; slow down.", **{"Retry-After": str(retry_after)})

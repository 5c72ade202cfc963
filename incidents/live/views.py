"""Server-Sent Events: `/events/incidents/` (every incident the user may see: dashboard, incident list) and
`/events/incidents/INC-n/` (one incident: its page).

Async views, served by the ASGI process (uvicorn). Each event is `event: incident` with `{"ref": "INC-n"}`; the page
answers it with its usual cursor request. A stream starts with `event: ready` once the Redis subscription is
confirmed (the page catches up then, so nothing committed between its render and the stream is missed), sends a
comment every LIVE_KEEPALIVE_SECONDS, and ends after LIVE_STREAM_MAX_SECONDS (the browser reconnects and is
authenticated again). 204 tells the browser to stop and keep polling: no Redis, or a WSGI server, which cannot
hold a stream open.
"""

from __future__ import annotations

import asyncio
import json
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from .. import access
from ..accounts.second_factor import pending_step
from ..models import Incident, user_sees_restricted
from . import enabled
from .hub import LOST, hub


def _release_connection() -> None:
    # Streams stay open for minutes; the database connection used to authorise one must not stay with it.
    if not connection.in_atomic_block:
        connection.close()


def _authorise(request, reference: str | None) -> tuple[bool, int | None, bool]:
    """(may connect, incident id or None, sees every restricted incident). Runs in a worker thread."""
    try:
        user = request.user
        # A session that still owes its second factor reaches no page, and no stream either.
        if not access.can_view(user) or pending_step(request) is not None:
            return False, None, False
        sees_all = bool(user.is_superuser or user_sees_restricted(user))
        if reference is None:
            return True, None, sees_all
        number = reference.removeprefix("INC-")
        if not number.isdigit() or len(number) > 9:
            raise Http404("No such incident.")
        incident_id = Incident.objects.visible_to(user).filter(number=int(number)).values_list("pk", flat=True).first()
        if incident_id is None:
            raise Http404("No such incident.")
        return True, incident_id, sees_all
    finally:
        _release_connection()


def _may_see(user, incident_id: int) -> bool:
    try:
        return Incident.objects.visible_to(user).filter(pk=incident_id).exists()
    finally:
        _release_connection()


# Streams often open all at once (a deploy, a network blip): at most this many of them authorise at the same time,
# so a burst of reconnects takes a handful of database connections, not one each.
_AUTHORISING = 4
_semaphores: dict = {}


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _semaphores.get(loop)
    if gate is None:
        for old in [old for old in _semaphores if old.is_closed()]:
            del _semaphores[old]
        gate = _semaphores[loop] = asyncio.Semaphore(_AUTHORISING)
    return gate


def _frame(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(request, listener, *, sees_all: bool):
    keepalive = settings.LIVE_KEEPALIVE_SECONDS
    deadline = time.monotonic() + settings.LIVE_STREAM_MAX_SECONDS
    may_see = sync_to_async(_may_see)
    yield b"retry: 2000\n" + _frame("ready", {})
    while (left := deadline - time.monotonic()) > 0:
        try:
            first = await asyncio.wait_for(listener.queue.get(), min(keepalive, left))
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        batch = [first]
        while not listener.queue.empty():  # one event per incident for what arrived together
            batch.append(listener.queue.get_nowait())
        if any(item is LOST for item in batch):
            return
        sent = set()
        for item in batch:
            if item["ref"] in sent:
                continue
            if item.get("restricted") and not sees_all:
                async with _gate():
                    visible = await may_see(request.user, item["id"])
                if not visible:
                    continue
            sent.add(item["ref"])
            yield _frame("incident", {"ref": item["ref"]})


@require_GET
async def stream(request, reference: str | None = None):
    if not enabled() or not isinstance(request, ASGIRequest):
        return HttpResponse(status=204)
    async with _gate():
        allowed, incident_id, sees_all = await sync_to_async(_authorise)(request, reference)
    if not allowed:
        return HttpResponse("Sign in to follow incidents.", status=403, content_type="text/plain")
    events_hub = hub()
    listener = await events_hub.open(incident_id=incident_id)
    if listener is None:
        return HttpResponse(status=204)  # Redis is away: the page polls
    response = StreamingHttpResponse(_events(request, listener, sees_all=sees_all), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    # The stream ends (client gone, deadline, Redis lost): the hub forgets the listener, iterated or not.
    response._resource_closers.append(lambda: events_hub.close(listener))
    return response

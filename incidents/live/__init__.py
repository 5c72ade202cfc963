"""Live pages by push: a committed change to an incident is announced to the browsers showing it.

Every timeline entry is announced: `timeline_recorded` handles the TimelineRecorded lifecycle event after the
commit (incidents/apps.py subscribes it), and sends one small JSON message to a Redis pub/sub channel. The
`/events/` streams (Server-Sent Events, `incidents.live.views`, served by the ASGI process) hold one Redis
subscription per process (`incidents.live.hub`) and tell each browser "INC-n changed"; the page then asks for what
is new with the same cursor request the 2 s poll uses, so a missed message costs nothing but latency and the poll
takes over whenever the stream is down. Messages carry ids only, never incident content; restricted incidents are
announced only to streams whose user may see them.

Without Redis (the embedded default of `make run`) nothing is published and the pages poll.
"""

from __future__ import annotations

import json
import logging
import threading

from django.conf import settings

from ..models import Incident

logger = logging.getLogger(__name__)

_client = None
_client_lock = threading.Lock()


def enabled() -> bool:
    return bool(settings.LIVE_PUSH and settings.REDIS_URL)


def channel() -> str:
    """One channel per database, so two portals (or two test runs) sharing a Redis server never hear each other:
    pub/sub channels are global to a Redis server, whatever its database number."""
    return f"{settings.LIVE_CHANNEL_PREFIX}:{settings.DATABASES['default']['NAME']}"


def message(*, incident_id: int, number: int, restricted: bool) -> str:
    return json.dumps({"id": incident_id, "ref": f"INC-{number}", "restricted": restricted}, separators=(",", ":"))


def timeline_recorded(event) -> None:
    """After the commit of a timeline entry (lifecycle.TimelineRecorded)."""
    if not enabled():
        return
    if event.number is not None and event.restricted is not None:  # the writer held the incident row
        publish(message(incident_id=event.incident_id, number=event.number, restricted=event.restricted))
        return
    row = Incident.objects.filter(pk=event.incident_id).values_list("number", "is_restricted").first()
    if row is not None:
        publish(message(incident_id=event.incident_id, number=row[0], restricted=row[1]))


def _redis():
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                import redis

                # Short timeouts: a Redis that is away must not hold up the request that already committed.
                _client = redis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
                )
    return _client


def publish(payload: str) -> None:
    """After the commit: a failure is logged, never raised (the change is saved; the pages poll meanwhile)."""
    try:
        _redis().publish(channel(), payload)
    except Exception:
        logger.warning("live: could not publish %s", payload, exc_info=True)

"""The dead-man's switch: every minute, while the portal is healthy, request DEADMAN_SWITCH_URL (a
healthchecks.io check, Cronitor, or any monitor that alerts when the requests stop). When the timers stall, beat
dies, the database goes or the outbox sticks, the requests stop and the monitor pages through its own path."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import checks, conf
from .models import Heartbeat

log = logging.getLogger(__name__)


def should_ping() -> bool:
    """A switch is configured and the portal is healthy (the broker is not checked: this runs as a task)."""
    if not conf.get("DEADMAN_SWITCH_URL"):
        return False
    healthy, report = checks.report(include_broker=False)
    if not healthy:
        failing = [name for name, check in report["checks"].items() if not check["ok"]]
        log.warning("dead-man's switch not pinged: unhealthy (%s)", ", ".join(failing))
    return healthy


# When the switch was last claimed for a ping: a row of the tick heartbeats' table under a name no tick has.
CLAIM_NAME = "deadman-switch-ping"
# A tick may run this much earlier than a whole interval after the last claimed ping and still ping (a late tick of
# the one beat must not skip a minute); a second beat's tick within the same interval finds the ping taken.
CLAIM_SLACK = 0.25


def claim_ping(*, interval_seconds: float, now=None) -> bool:
    """Take this interval's ping: True for one tick an interval, however many beats run it (two beats, one per
    worker host, both tick every minute). One UPDATE ... WHERE on one row: a concurrent claim waits for the first to
    commit, then finds the row already claimed."""
    now = now or timezone.now()
    with transaction.atomic():
        Heartbeat.objects.get_or_create(name=CLAIM_NAME, defaults={"last_beat_at": now - timedelta(days=1)})
        earliest = now - timedelta(seconds=interval_seconds * (1 - CLAIM_SLACK))
        return Heartbeat.objects.filter(name=CLAIM_NAME, last_beat_at__lte=earliest).update(last_beat_at=now) == 1


def ping() -> bool:
    url = conf.get("DEADMAN_SWITCH_URL")
    if not url.startswith(("https://", "http://")):
        log.error("DEADMAN_SWITCH_URL is not an http(s) address")
        return False
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "incident-portal-deadman/1"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=conf.get_float("DEADMAN_SWITCH_TIMEOUT_SECONDS")) as response:  # noqa: S310
            response.read(1024)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        log.warning("dead-man's switch ping failed: %s", error)
        return False
    return True


def ping_if_healthy() -> bool:
    return should_ping() and ping()

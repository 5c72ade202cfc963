"""Heartbeat monitors: a job pings its URL at least every `period`; a ping missing for `period + grace` opens an alert
group through the heartbeat integration (its routing rules decide: attach, declare or record), and the next ping
resolves it. `/fail` opens the alert at once, `/start` records that a run began.

A ping is the hot path (every cron job of a company pings): when no alert is open it is one prepared UPDATE in
autocommit, which also counts the ping against the heartbeat's rate limit in the row (no Redis round trip).
The missed-heartbeat check is a timer tick like the escalation tick: it claims due rows (`due_at`, a partial index)
with SKIP LOCKED, marks them alerted and ingests the alerts in the same transaction, so an alert opens once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidentportal.db import prepared_cursor
from incidents.profiles.zones import format_moment_utc

from .models import Heartbeat, HeartbeatState, Integration, IntegrationKind, RouteAction
from .parsers import AlertEventIn
from .services.ingestion import ingest_alert_events

log = logging.getLogger(__name__)

HEARTBEAT_INTEGRATION = "Heartbeat monitors"
MAX_PERIOD = timedelta(days=31)
MAX_GRACE = timedelta(days=7)
MIN_PERIOD = timedelta(seconds=30)


class HeartbeatError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PingResult:
    found: bool
    state: str = ""
    resolved_alert: bool = False
    limited: bool = False  # over HEARTBEAT_RATE_LIMIT_PER_MINUTE: nothing was recorded
    retry_after: int = 0


RATE_WINDOW_SECONDS = 60


def rate_window(now: datetime) -> tuple[int, int]:
    """The rate-limit window of `now` (Unix time // 60) and the seconds until the next one."""
    stamp = now.timestamp()
    window = int(stamp // RATE_WINDOW_SECONDS)
    return window, max(1, math.ceil((window + 1) * RATE_WINDOW_SECONDS - stamp))


def _rate_limit() -> int:
    return int(settings.HEARTBEAT_RATE_LIMIT_PER_MINUTE)


def _count_ping(heartbeat: Heartbeat, window: int) -> bool:
    """Count one ping against the locked row's window; False (nothing counted) when the limit is reached."""
    if heartbeat.rate_window == window:
        if heartbeat.rate_count >= _rate_limit():
            return False
        heartbeat.rate_count += 1
    else:
        heartbeat.rate_window, heartbeat.rate_count = window, 1
    return True


RATE_FIELDS = ["rate_window", "rate_count"]


def heartbeat_integration() -> Integration:
    """The integration every heartbeat alert comes through; managers give it routing rules like any other."""
    integration, _ = Integration.objects.get_or_create(
        name=HEARTBEAT_INTEGRATION,
        defaults={"kind": IntegrationKind.HEARTBEAT, "default_action": RouteAction.ATTACH},
    )
    return integration


def check_schedule(*, period: timedelta | None, grace: timedelta | None) -> None:
    if period is None:
        raise HeartbeatError("period", "Give the period, e.g. 00:05:00 for a job that runs every five minutes.")
    if not MIN_PERIOD <= period <= MAX_PERIOD:
        raise HeartbeatError("period", "The period must be between 30 seconds and 31 days.")
    if grace is None or not timedelta(0) <= grace <= MAX_GRACE:
        raise HeartbeatError("grace", "The grace time must be between 0 and 7 days.")


def create_heartbeat(*, name: str, period: timedelta, grace: timedelta = timedelta(minutes=1), **fields) -> Heartbeat:
    check_schedule(period=period, grace=grace)
    return Heartbeat.objects.create(name=name, period=period, grace=grace, **fields)


def _event(heartbeat: Heartbeat, action: str, *, summary: str, at: datetime) -> AlertEventIn:
    slug = heartbeat.service.slug if heartbeat.service_id else ""
    labels = {"heartbeat": heartbeat.name}
    if slug:
        labels["service"] = slug
    return AlertEventIn(
        action=action,
        dedup_key=heartbeat.dedup_key,
        summary=summary,
        severity=heartbeat.severity,
        source="heartbeat",
        labels=labels,
        occurred_at=at,
        service_slug=slug,
    )


# The common ping (active, no alert open, under its rate limit) is this one statement in autocommit, prepared once per
# connection: the deadline, the count and the rate-limit window in the row, nothing else. It matches no row when the
# heartbeat is unknown, paused, alerting or over its limit; ping() then takes the locked path below to tell which.
FAST_PING = (
    "UPDATE alerting_heartbeat SET last_ping_at = %(now)s, due_at = %(now)s + period + grace, state = 'up', "
    "ping_count = ping_count + 1, rate_count = CASE WHEN rate_window = %(window)s THEN rate_count + 1 ELSE 1 END, "
    "rate_window = %(window)s "
    "WHERE public_id = %(public_id)s AND tick = '' AND is_active AND NOT alert_open "
    "AND (rate_window <> %(window)s OR rate_count < %(limit)s)"
)


def ping_fast(public_id, *, now: datetime) -> bool:
    """The common ping in one statement; False when it is not the common case (ping() then tells which)."""
    with prepared_cursor() as cursor:
        cursor.execute(
            FAST_PING, {"now": now, "window": rate_window(now)[0], "public_id": public_id, "limit": _rate_limit()}
        )
        return cursor.rowcount == 1


def ping(public_id, *, now: datetime | None = None, limited: bool = True) -> PingResult:
    """A successful run. Resolves the heartbeat's open alert, if any, and sets the next deadline. `limited=False`
    (the portal's own timers) skips the rate limit."""
    now = now or timezone.now()
    if limited and ping_fast(public_id, now=now):
        return PingResult(found=True, state=HeartbeatState.UP)
    window, retry_after = rate_window(now)
    with transaction.atomic():
        heartbeat = (
            Heartbeat.objects.select_for_update(of=("self",))
            .select_related("service")
            .filter(public_id=public_id)
            .first()
        )
        if heartbeat is None or (heartbeat.tick and limited):  # a portal timer's heartbeat has no ping URL
            return PingResult(found=False)
        if limited and not _count_ping(heartbeat, window):
            return PingResult(found=True, state=heartbeat.state, limited=True, retry_after=retry_after)
        heartbeat.last_ping_at = now
        heartbeat.ping_count += 1
        resolved = heartbeat.alert_open
        if heartbeat.alert_open:
            ingest_alert_events(
                integration=heartbeat_integration(),
                events=[_event(heartbeat, "resolve", summary=f"Heartbeat back: {heartbeat.name}", at=now)],
            )
            heartbeat.alert_open = False
        if heartbeat.is_active:
            heartbeat.state = HeartbeatState.UP
            heartbeat.due_at = now + heartbeat.period + heartbeat.grace
        else:
            heartbeat.state = HeartbeatState.PAUSED
            heartbeat.due_at = None
        heartbeat.save(update_fields=["last_ping_at", "ping_count", "alert_open", "state", "due_at", *RATE_FIELDS])
        return PingResult(found=True, state=heartbeat.state, resolved_alert=resolved)


# A portal timer's heartbeat (Heartbeat.tick): pinged by the worker after each successful run of the tick, so the
# tick's lateness is a heartbeat like any job's: listed with its state, alerting through the same integration.
# Not rate-limited (the portal pings it, every TIMER_TICK_SECONDS).
TICK_PERIOD = MIN_PERIOD
TICK_GRACE = timedelta(seconds=30)
TICK_PING = (
    "UPDATE alerting_heartbeat SET last_ping_at = %(now)s, due_at = %(now)s + period + grace, state = 'up', "
    "ping_count = ping_count + 1 WHERE tick = %(tick)s AND is_active AND NOT alert_open"
)


def tick_ran(tick: str, *, name: str, now: datetime | None = None) -> None:
    """The timer `tick` finished a run. Its heartbeat is made at the first run (period 30 s, grace 30 s; managers may
    change both), and an open alert is resolved like any heartbeat's next ping resolves it."""
    now = now or timezone.now()
    with prepared_cursor() as cursor:
        cursor.execute(TICK_PING, {"now": now, "tick": tick})
        if cursor.rowcount:
            return
    public_id = Heartbeat.objects.filter(tick=tick).values_list("public_id", flat=True).first()
    if public_id is None:
        public_id = _tick_heartbeat(tick, name=name, now=now).public_id
    ping(public_id, now=now, limited=False)


def _tick_heartbeat(tick: str, *, name: str, now: datetime) -> Heartbeat:
    # Two workers at once make one row (the tick is unique); a manager's heartbeat with the same name leaves the
    # tick's row its own name.
    for candidate in (name, f"{name} [{tick}]"):
        Heartbeat.objects.bulk_create(
            [Heartbeat(name=candidate, tick=tick, period=TICK_PERIOD, grace=TICK_GRACE, created_at=now)],
            ignore_conflicts=True,
        )
        heartbeat = Heartbeat.objects.filter(tick=tick).first()
        if heartbeat is not None:
            return heartbeat
    raise HeartbeatError("name", f"No free name for the heartbeat of {tick}.")


def open_missed_tick_alerts(*, now: datetime | None = None) -> int:
    """The missed-heartbeat check for the portal's own timers only, for a process that is not a timer (the web's
    /healthz when a timer is stale): when the timers queue itself has stopped, nothing else would open the alert."""
    return open_missed_alerts(now=now, ticks_only=True)


def start(public_id, *, now: datetime | None = None) -> PingResult:
    """A run began (healthchecks.io's /start): recorded and shown; the deadline is unchanged."""
    now = now or timezone.now()
    window, retry_after = rate_window(now)
    with transaction.atomic():
        heartbeat = Heartbeat.objects.select_for_update().filter(public_id=public_id).first()
        if heartbeat is None or heartbeat.tick:
            return PingResult(found=False)
        if not _count_ping(heartbeat, window):
            return PingResult(found=True, state=heartbeat.state, limited=True, retry_after=retry_after)
        heartbeat.last_start_at = now
        fields = ["last_start_at", *RATE_FIELDS]
        if heartbeat.is_active and not heartbeat.alert_open:
            heartbeat.state = HeartbeatState.RUNNING
            fields.append("state")
        heartbeat.save(update_fields=fields)
        return PingResult(found=True, state=heartbeat.state)


def fail(public_id, *, now: datetime | None = None) -> PingResult:
    """The job reports a failure: the alert opens now rather than when the deadline passes."""
    now = now or timezone.now()
    window, retry_after = rate_window(now)
    with transaction.atomic():
        heartbeat = (
            Heartbeat.objects.select_for_update(of=("self",))
            .select_related("service")
            .filter(public_id=public_id)
            .first()
        )
        if heartbeat is None or heartbeat.tick:
            return PingResult(found=False)
        if not _count_ping(heartbeat, window):
            return PingResult(found=True, state=heartbeat.state, limited=True, retry_after=retry_after)
        heartbeat.last_ping_at = now
        fields = ["last_ping_at", *RATE_FIELDS]
        if heartbeat.is_active:
            if not heartbeat.alert_open:
                summary = f"Heartbeat reported failure: {heartbeat.name}"
                ingest_alert_events(
                    integration=heartbeat_integration(), events=[_event(heartbeat, "trigger", summary=summary, at=now)]
                )
                heartbeat.alert_open = True
                heartbeat.alerted_at = now
                fields += ["alert_open", "alerted_at"]
            heartbeat.state = HeartbeatState.FAILED
            heartbeat.due_at = now + heartbeat.period + heartbeat.grace
            fields += ["state", "due_at"]
        heartbeat.save(update_fields=fields)
        return PingResult(found=True, state=heartbeat.state)


def open_missed_alerts(
    *, now: datetime | None = None, batch: int = 1000, budget_seconds: float = 20.0, ticks_only: bool = False
) -> int:
    """The tick: every active heartbeat past its deadline without an open alert gets one. Returns how many."""
    started = timezone.now()
    total = 0
    integration = None
    while True:
        moment = now or timezone.now()
        with transaction.atomic():
            due = Heartbeat.objects.select_for_update(skip_locked=True, of=("self",)).filter(
                is_active=True, alert_open=False, due_at__lte=moment
            )
            if ticks_only:
                due = due.exclude(tick="")
            due = list(due.select_related("service").order_by("due_at")[:batch])
            if not due:
                return total
            integration = integration or heartbeat_integration()
            events = [
                _event(
                    heartbeat,
                    "trigger",
                    summary=f"Heartbeat missed: {heartbeat.name} (no ping since "
                    f"{format_moment_utc(heartbeat.last_ping_at or heartbeat.created_at)})",
                    at=heartbeat.due_at,
                )
                for heartbeat in due
            ]
            ingest_alert_events(integration=integration, events=events)
            Heartbeat.objects.filter(pk__in=[heartbeat.pk for heartbeat in due]).update(
                alert_open=True, alerted_at=now or timezone.now(), state=HeartbeatState.LATE
            )
        total += len(due)
        if len(due) < batch or (timezone.now() - started).total_seconds() > budget_seconds:
            return total

"""What /healthz and the dead-man's switch check: the database, the broker, that every timer keeps ticking, and
that the page outbox drains. Each check answers {"ok": bool, ...details}; a failing dependency makes the checks
that need it fail too (no database, no heartbeats)."""

from __future__ import annotations

import os
from datetime import datetime

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Min
from django.utils import timezone

from incidentportal.celery import beat_ticks
from oncall.paging.models import Notification

from . import conf
from .models import Heartbeat


def database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return {"ok": False, "error": str(error).strip()[:200] or error.__class__.__name__}
    return {"ok": True}


def broker() -> dict:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        except (redis.RedisError, OSError) as error:
            return {"ok": False, "error": str(error)[:200] or error.__class__.__name__}
        finally:
            client.close()
        return {"ok": True}
    folder = (getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}).get("data_folder_in")
    if folder and not os.access(folder, os.W_OK):
        return {"ok": False, "error": f"the broker folder {folder} is missing or not writable"}
    return {"ok": True}


def timers(now: datetime) -> dict:
    """Each beat tick's last successful run. A tick is stale after HEALTH_STALE_TICKS of its intervals. A tick
    that never ran fails only if it runs every TIMER_TICK_SECONDS (the paging timers, which run within seconds of
    beat starting); slower ones (hourly clean-ups) are "pending" until their first run."""
    factor = conf.get_float("HEALTH_STALE_TICKS")
    beats = dict(Heartbeat.objects.values_list("name", "last_beat_at"))
    found, ok = {}, True
    for name, _task, seconds in beat_ticks():
        stale_after = factor * seconds
        last = beats.get(name)
        if last is None:
            fails = seconds <= float(settings.TIMER_TICK_SECONDS)
            found[name] = {"ok": not fails, "state": "never" if fails else "pending", "interval_seconds": seconds}
        else:
            age = max((now - last).total_seconds(), 0.0)
            fresh = age <= stale_after
            found[name] = {
                "ok": fresh,
                "state": "ok" if fresh else "stale",
                "last_tick_at": last.isoformat(),
                "age_seconds": round(age, 3),
                "interval_seconds": seconds,
                "stale_after_seconds": stale_after,
            }
        ok = ok and found[name]["ok"]
    return {"ok": ok, "timers": found}


def outbox(now: datetime) -> dict:
    """Page notifications due but not sent: the oldest one's wait."""
    due = Notification.objects.filter(status=Notification.Status.PENDING, scheduled_for__lte=now).aggregate(
        count=Count("id"), oldest=Min("scheduled_for")
    )
    age = max((now - due["oldest"]).total_seconds(), 0.0) if due["oldest"] else 0.0
    limit = conf.get_float("HEALTH_OUTBOX_MAX_AGE_SECONDS")
    return {
        "ok": age <= limit,
        "due_unsent": due["count"],
        "oldest_age_seconds": round(age, 3),
        "max_age_seconds": limit,
    }


def report(*, include_broker: bool = True) -> tuple[bool, dict]:
    now = timezone.now()
    checks: dict[str, dict] = {"database": database()}
    if include_broker:
        checks["broker"] = broker()
    if checks["database"]["ok"]:
        try:
            checks["timers"] = timers(now)
            checks["outbox"] = outbox(now)
        except DatabaseError as error:
            checks["timers"] = checks["outbox"] = {"ok": False, "error": str(error)[:200]}
    else:
        checks["timers"] = checks["outbox"] = {"ok": False, "error": "the database is unreachable"}
    healthy = all(check["ok"] for check in checks.values())
    return healthy, {"status": "ok" if healthy else "unhealthy", "checked_at": now.isoformat(), "checks": checks}

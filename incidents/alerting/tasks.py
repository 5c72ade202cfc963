"""Celery tasks of the alerting app: thin, idempotent, they call services.

- heartbeat_tick (queue `timers`, every TIMER_TICK_SECONDS): heartbeats past their deadline open their alert.
- prune_signatures_tick (hourly): forget signed-delivery signatures older than the replay window.
"""

from celery import shared_task
from django.conf import settings

from . import heartbeats
from .services.integrations import prune_seen_signatures

BEAT_TICKS = [
    ("alerting-heartbeat-tick", "incidents.alerting.tasks.heartbeat_tick"),
    ("alerting-prune-seen-signatures", "incidents.alerting.tasks.prune_signatures_tick", 3600),
]


@shared_task(acks_late=True, ignore_result=True)
def heartbeat_tick():
    budget = max(1.0, min(20.0, settings.CELERY_TASK_SOFT_TIME_LIMIT / 2))
    return heartbeats.open_missed_alerts(batch=settings.HEARTBEAT_TICK_BATCH, budget_seconds=budget)


@shared_task(acks_late=True, ignore_result=True)
def prune_signatures_tick() -> int:
    return prune_seen_signatures()

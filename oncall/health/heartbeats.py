"""Tick heartbeats: after a beat tick finishes successfully, its worker records the time (one UPSERT)."""

from __future__ import annotations

import functools
import logging

from django.db import DatabaseError
from django.utils import timezone

from incidentportal.celery import beat_ticks
from incidents.alerting import heartbeats as portal_heartbeats

from .models import Heartbeat

log = logging.getLogger(__name__)


@functools.cache
def tick_names_by_task() -> dict[str, tuple[str, ...]]:
    names: dict[str, list[str]] = {}
    for name, task_path, _seconds in beat_ticks():
        names.setdefault(task_path, []).append(name)
    return {task: tuple(found) for task, found in names.items()}


def record(names, *, at=None) -> None:
    at = at or timezone.now()
    Heartbeat.objects.bulk_create(
        [Heartbeat(name=name, last_beat_at=at) for name in names],
        update_conflicts=True,
        unique_fields=["name"],
        update_fields=["last_beat_at"],
    )


# Timers whose lateness is also a heartbeat monitor (incidents.alerting.heartbeats.tick_ran): listed for managers
# beside the jobs' heartbeats, late and then down when the tick stops, alerting like any missed heartbeat.
WATCHED_TICKS = {"paging-escalation-tick": "Portal timer: escalation tick"}


def on_task_postrun(sender=None, task=None, state=None, **kwargs) -> None:
    """celery.signals.task_postrun: a tick that raised records nothing, so a failing timer goes stale too."""
    names = tick_names_by_task().get(getattr(task, "name", ""))
    if not names or state != "SUCCESS":
        return
    at = timezone.now()
    try:
        record(names, at=at)
        for name in names:
            if name in WATCHED_TICKS:
                portal_heartbeats.tick_ran(name, name=WATCHED_TICKS[name], now=at)
    except DatabaseError:
        log.exception("could not record the heartbeat of %s", task.name)

"""The dead-man's switch ping, every minute (on the default queue: an HTTP call must never hold up the timers)."""

from celery import shared_task

from . import deadman

BEAT_TICKS = [("health-deadman-switch", "oncall.health.tasks.ping_deadman_switch", 60)]


@shared_task(acks_late=True, ignore_result=True, expires=120)
def ping_deadman_switch() -> bool:
    return deadman.ping_if_healthy()

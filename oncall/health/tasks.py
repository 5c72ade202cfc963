"""The dead-man's switch: the tick (on the timers queue, every minute) checks health; the HTTP request itself goes
out from the notifications queue, so a slow monitor never holds up the timers."""

from celery import shared_task

from . import deadman

BEAT_TICKS = [("health-deadman-switch", "oncall.health.tasks.deadman_tick", 60)]


@shared_task(acks_late=True, ignore_result=True)
def deadman_tick() -> bool:
    if not deadman.should_ping():
        return False
    send_deadman_ping.delay()
    return True


@shared_task(ignore_result=True, expires=120)
def send_deadman_ping() -> bool:
    return deadman.ping()

"""The dead-man's switch: the tick (on the timers queue, every minute) checks health; the HTTP request itself goes
out from the notifications queue, so a slow monitor never holds up the timers."""

from celery import shared_task

from . import deadman

PING_EVERY_SECONDS = 60
BEAT_TICKS = [("health-deadman-switch", "oncall.health.tasks.deadman_tick", PING_EVERY_SECONDS)]


@shared_task(acks_late=True, ignore_result=True)
def deadman_tick() -> bool:
    # Claimed after the health check: with a beat on each worker host the tick runs twice an interval, the ping once.
    if not deadman.should_ping() or not deadman.claim_ping(interval_seconds=PING_EVERY_SECONDS):
        return False
    send_deadman_ping.delay()
    return True


@shared_task(ignore_result=True, expires=120)
def send_deadman_ping() -> bool:
    return deadman.ping()

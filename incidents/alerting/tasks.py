"""Alerting's periodic work: forget signatures older than the replay window."""

from celery import shared_task

from . import services

# (name, task, every seconds): registered by incidentportal.celery.
BEAT_TICKS = [("alerting-prune-seen-signatures", "incidents.alerting.tasks.prune_signatures_tick", 3600)]


@shared_task(acks_late=True, ignore_result=True)
def prune_signatures_tick() -> int:
    return services.prune_seen_signatures()

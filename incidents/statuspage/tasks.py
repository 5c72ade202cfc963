"""Celery tasks for the status page: thin and idempotent; the outbox rows in PostgreSQL are the truth."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from . import services
from .models import DeliveryState, UpdateDelivery

# A pending delivery older than this is assumed lost by the broker and re-enqueued by the tick.
REDELIVER_AFTER = timedelta(minutes=1)

# Deliveries per task run, well inside the task time limit even with a slow SMTP server.
BATCH_SIZE = 500

BEAT_TICKS = [
    ("statuspage-redeliver", "incidents.statuspage.tasks.redeliver_tick", 30),
    ("statuspage-purge-unconfirmed", "incidents.statuspage.tasks.purge_unconfirmed_tick", 3600),
]


@shared_task(acks_late=True, max_retries=3, default_retry_delay=30)
def send_confirmation_email(subscriber_id: int, all_services: bool, service_ids: list[int]) -> bool:
    return services.send_confirmation(subscriber_id=subscriber_id, all_services=all_services, service_ids=service_ids)


@shared_task(acks_late=True)
def send_update_emails(update_id: int) -> dict:
    """Send every pending delivery of one update that is due. Running it twice sends nothing twice."""
    results: dict[str, int] = {}
    delivery_ids = services.pending_delivery_ids(update_id=update_id, due_before=timezone.now(), limit=BATCH_SIZE)
    update = services.prepare_update_for_email(update_id) if delivery_ids else None
    for delivery_id in delivery_ids:
        state = services.deliver_update_email(delivery_id=delivery_id, update=update) or "taken"
        results[state] = results.get(state, 0) + 1
    if len(delivery_ids) == BATCH_SIZE:
        send_update_emails.delay(update_id)  # more to send: continue in a fresh task, not a longer one
    return results


@shared_task(acks_late=True)
def redeliver_tick() -> int:
    """Wake the sender for updates whose deliveries are due and waiting (a lost message, or a retry after a
    failed send). Cheap: it only enqueues; sending happens on the notifications queue."""
    now = timezone.now()
    update_ids = set(
        UpdateDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .filter(created_at__lte=now - REDELIVER_AFTER)
        .values_list("update_id", flat=True)
        .distinct()[:100]
    )
    for update_id in sorted(update_ids):
        send_update_emails.delay(update_id)
    return len(update_ids)


@shared_task(acks_late=True)
def purge_unconfirmed_tick() -> int:
    return services.purge_unconfirmed_subscribers()

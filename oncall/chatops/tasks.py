"""Celery tasks for chat-ops: thin and idempotent.

- deliver_chat (queue `notifications`): send due chat outbox rows.
- chat_outbox_tick (queue `timers`): wake the sender when rows are due (lost messages, backoff,
  Retry-After).
- process_inbound (queue `chat`): do what a verified Slack/Mattermost request asks (claimed FOR UPDATE
  SKIP LOCKED, once).
- chat_inbound_tick (queue `timers`): re-queue requests whose Celery message was lost.
"""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import inbound, outbox
from .models import InboundRequest

BEAT_TICKS = [
    ("chatops-outbox-tick", "oncall.chatops.tasks.chat_outbox_tick"),
    ("chatops-inbound-tick", "oncall.chatops.tasks.chat_inbound_tick", 10),
]
MAX_INBOUND_ATTEMPTS = 3
# Trigger ids expire after 3 s: a request that waited longer than this for a worker is not worth a late modal.
INBOUND_CATCH_UP = timedelta(minutes=30)
# A request this fresh is still in its own Celery message.
INBOUND_GRACE = timedelta(seconds=10)


def _budget() -> float:
    return max(1.0, min(20.0, settings.CELERY_TASK_SOFT_TIME_LIMIT / 2))


@shared_task(acks_late=True, ignore_result=True)
def deliver_chat():
    return outbox.deliver_due(budget_seconds=_budget())


@shared_task(acks_late=True, ignore_result=True)
def chat_outbox_tick():
    due = outbox.due_count()
    if due:
        outbox.wake_sender()
    return due


def process_one(pk: int) -> str | None:
    """Process one stored request, once: the row is locked (SKIP LOCKED) and marked processed in one transaction."""
    with transaction.atomic():
        row = (
            InboundRequest.objects.select_for_update(skip_locked=True).filter(pk=pk, processed_at__isnull=True).first()
        )
        if row is None:
            return None
        row.attempts += 1
        try:
            with transaction.atomic():
                outcome = inbound.process(row)
        except Exception as error:  # recorded; retried by the inbound tick up to MAX_INBOUND_ATTEMPTS
            outcome = f"error: {type(error).__name__}: {error}"
            if row.attempts < MAX_INBOUND_ATTEMPTS:
                row.outcome = outcome[:2000]
                row.save(update_fields=["attempts", "outcome"])
                return outcome
        row.processed_at = timezone.now()
        row.outcome = (outcome or "")[:2000]
        row.save(update_fields=["attempts", "outcome", "processed_at"])
        return outcome


@shared_task(acks_late=True, ignore_result=True)
def process_inbound(pk: int):
    return process_one(pk)


@shared_task(acks_late=True, ignore_result=True)
def chat_inbound_tick():
    """Re-queue requests whose Celery message was lost (on the `chat` queue: the timers worker never calls Slack)."""
    now = timezone.now()
    pending = InboundRequest.objects.filter(
        processed_at__isnull=True, received_at__gte=now - INBOUND_CATCH_UP, received_at__lte=now - INBOUND_GRACE
    ).order_by("id")
    requeued = 0
    for pk in pending.values_list("pk", flat=True)[:100]:
        try:
            process_inbound.apply_async(args=[pk], expires=60)
        except Exception:  # noqa: BLE001 - broker down: the next tick tries again
            break
        requeued += 1
    return requeued

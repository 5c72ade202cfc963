"""Celery tasks: thin and idempotent. State lives in PostgreSQL; these only wake it up.

- escalation_tick (queue `timers`, every TIMER_TICK_SECONDS): due escalations, in batches.
- reminder_tick (queue `timers`, every 5 s): the guide's reminders (acknowledge target, update cadence, close).
- outbox_tick (queue `timers`): if notifications are due, wake the senders — the catch-up for lost messages,
  a flushed Redis, retry backoff, contact-method delays and rate-limited batches.
- deliver_notifications (queue `notifications`): drain due outbox rows. Slow channels live on this queue, served
  by their own worker, so they can never starve the escalation tick.
Running any of them twice, or never, is safe: rows are claimed FOR UPDATE SKIP LOCKED and the next tick catches up.
"""

from celery import shared_task
from django.conf import settings

from . import delivery, reminders
from .services import engine

BEAT_TICKS = [
    ("paging-escalation-tick", "oncall.paging.tasks.escalation_tick"),
    ("paging-outbox-tick", "oncall.paging.tasks.outbox_tick"),
    # The guide's reminders are minutes apart: every few seconds is plenty, and keeps the escalation tick lean.
    ("paging-reminder-tick", "oncall.paging.tasks.reminder_tick", 5),
]


def _budget() -> float:
    # Well inside the soft time limit, so a tick ends by itself rather than being cut off mid-batch.
    return max(1.0, min(20.0, settings.CELERY_TASK_SOFT_TIME_LIMIT / 2))


@shared_task(acks_late=True, ignore_result=True)
def escalation_tick():
    return engine.run_escalation_tick(budget_seconds=_budget(), batch=settings.PAGING_TICK_BATCH)


@shared_task(acks_late=True, ignore_result=True)
def reminder_tick():
    return reminders.run_reminder_tick()


@shared_task(acks_late=True, ignore_result=True)
def outbox_tick():
    due = delivery.due_count(cap=1)
    if due:
        engine.wake_senders()
    return due


@shared_task(acks_late=True, ignore_result=True)
def deliver_notifications():
    return delivery.deliver_due_notifications(budget_seconds=_budget())

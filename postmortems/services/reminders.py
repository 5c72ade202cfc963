"""Reminders about action items due soon or overdue, sent by the beat tick."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from incidentportal.celery import registered_task
from incidentportal.db import claim_due_rows

from ..models import ActionItem, PostMortem, PostMortemStatus

# "Before due" reminders go out this many days ahead of the due date.
REMIND_DAYS_BEFORE_DUE = 1
REMINDER_BATCH = 200


# --- reminders (called by the beat tick) ------------------------------------------------------------------


@transaction.atomic
def send_due_reminders(*, now: datetime | None = None, limit: int = REMINDER_BATCH) -> dict[str, int]:
    """Claim due reminders (incidentportal.db.claim_due_rows, SKIP LOCKED), stamp them (so each fires once, even
    with two ticks running at once) and queue the emails after commit. Overdue wins over "due soon": an item found
    already overdue gets only the overdue reminder."""
    send_action_item_reminder = registered_task("postmortems.tasks.send_action_item_reminder")
    send_schedule_reminder = registered_task("postmortems.tasks.send_schedule_reminder")
    now = now or timezone.now()
    today = timezone.localdate(now)
    counts = {"overdue": 0, "before_due": 0, "schedule": 0}

    overdue = claim_due_rows(
        ActionItem.objects.filter(
            status__in=("open", "in_progress"), reminded_overdue_at__isnull=True, due_date__lt=today
        ).values_list("pk", flat=True),
        order_by=("due_date", "id"),
        limit=limit,
    )
    if overdue:
        ActionItem.objects.filter(pk__in=overdue).update(reminded_overdue_at=now)
        ActionItem.objects.filter(pk__in=overdue, reminded_before_at__isnull=True).update(reminded_before_at=now)
    for pk in overdue:
        transaction.on_commit(partial(send_action_item_reminder.delay, pk, "overdue"))
    counts["overdue"] = len(overdue)

    soon = claim_due_rows(
        ActionItem.objects.filter(
            status__in=("open", "in_progress"),
            reminded_before_at__isnull=True,
            due_date__gte=today,
            due_date__lte=today + timedelta(days=REMIND_DAYS_BEFORE_DUE),
        ).values_list("pk", flat=True),
        order_by=("due_date", "id"),
        limit=limit,
    )
    if soon:
        ActionItem.objects.filter(pk__in=soon).update(reminded_before_at=now)
    for pk in soon:
        transaction.on_commit(partial(send_action_item_reminder.delay, pk, "before_due"))
    counts["before_due"] = len(soon)

    unscheduled = claim_due_rows(
        PostMortem.objects.filter(meeting_at__isnull=True, schedule_reminded_at__isnull=True, due_at__lte=now)
        .exclude(status=PostMortemStatus.PUBLISHED)
        .values_list("pk", flat=True),
        order_by=("due_at", "id"),
        limit=limit,
    )
    if unscheduled:
        PostMortem.objects.filter(pk__in=unscheduled).update(schedule_reminded_at=now)
    for pk in unscheduled:
        transaction.on_commit(partial(send_schedule_reminder.delay, pk))
    counts["schedule"] = len(unscheduled)
    return counts

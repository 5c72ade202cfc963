"""Celery tasks: thin and idempotent. The reminder tick claims due rows in the database (state lives there);
the send tasks only format and deliver."""

from smtplib import SMTPException

from celery import shared_task

from . import emails
from .services.publishing import mark_report_sent
from .services.reminders import send_due_reminders

# Reminders are by date, so a tick every 30 seconds is plenty.
BEAT_TICKS = [("postmortems-reminder-tick", "postmortems.tasks.reminder_tick", 30)]

_SEND_OPTIONS = {
    "acks_late": True,
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": 10,
    "retry_backoff_max": 600,
    "max_retries": 5,
}


@shared_task(acks_late=True)
def reminder_tick():
    """Action items due soon or overdue, and post-mortems not scheduled within 48 h: each reminded once."""
    return send_due_reminders()


@shared_task(**_SEND_OPTIONS)
def send_postmortem_report(postmortem_id: int):
    sent = emails.send_report(postmortem_id)
    if sent:
        mark_report_sent(postmortem_id=postmortem_id)
    return sent


@shared_task(**_SEND_OPTIONS)
def send_action_item_reminder(item_id: int, kind: str):
    return emails.send_action_item_reminder(item_id, kind)


@shared_task(**_SEND_OPTIONS)
def send_schedule_reminder(postmortem_id: int):
    return emails.send_schedule_reminder(postmortem_id)

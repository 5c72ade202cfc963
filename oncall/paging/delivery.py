"""The sender: claim a due outbox row, check it is still wanted, send it, mark it sent — in one transaction.

- Claim: FOR UPDATE SKIP LOCKED, so parallel senders and redelivered Celery messages never take the same row.
- Fence: FOR KEY SHARE on the incident and the page while sending. An acknowledgement (FOR UPDATE on both) waits
  for in-flight sends to finish and a sender that starts after it sees the page acknowledged and cancels its row:
  never a notification after the acknowledgement is committed.
- A worker killed mid-send rolls its transaction back; the row is pending again and the next sender takes it.
  Backends get the idempotency key, so a receiver that honours it drops the repeat of such a send.
- Rate limit: one message per channel per address per PAGING_RATE_LIMIT_SECONDS (a transaction-scoped advisory
  lock serialises senders per address); rows due inside the window wait for it and go out together as one
  batched message.
- Failures: temporary ones are retried with exponential backoff up to PAGING_MAX_ATTEMPTS; permanent ones (or
  attempts exhausted) are recorded on the row and on the incident timeline, and the person's next contact method
  is tried.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from incidents import events
from incidents.models import EntryKind, Incident

from . import channels, links
from .channels import OutgoingMessage, PermanentFailure, TemporaryFailure
from .models import Channel, Notification, Page

logger = logging.getLogger("oncall.paging.delivery")

CLOSED_PAGE_STATES = {Page.State.ACKNOWLEDGED, Page.State.STOPPED}
FENCED_PURPOSES = {Notification.Purpose.PAGE, Notification.Purpose.HOTLINE}
MAX_BATCH = 50


# --- message content -------------------------------------------------------------------------------------------


def _item(row: Notification) -> dict:
    incident = row.incident
    restricted = incident.is_restricted
    return {
        "row": row,
        "purpose": row.purpose,
        "reference": incident.reference,
        "severity": incident.severity.level,
        "severity_name": incident.severity.name,
        # Restricted incidents are visible only to their responders: a page names the reference, not the subject.
        "title": "Restricted incident" if restricted else incident.title,
        "is_restricted": restricted,
        "impact": "" if restricted else incident.impact,
        "status": incident.get_status_display(),
        "url": settings.SITE_URL + incident.get_absolute_url(),
        "ack_url": links.ack_url(row) if row.purpose in FENCED_PURPOSES and row.ack_nonce else "",
        "level": None if row.level is None else row.level + 1,
        "repeat": row.repeat + 1,
        "subject": row.subject,
        "message": row.message,
    }


def _subject(item: dict) -> str:
    if item["purpose"] == Notification.Purpose.REMINDER:
        return item["subject"] or f"{item['reference']}: reminder"
    prefix = "ESCALATION HOTLINE: " if item["purpose"] == Notification.Purpose.HOTLINE else ""
    level = f" (level {item['level']})" if item["level"] else ""
    return f"{prefix}[{item['severity']}] {item['reference']} {item['title']}{level}: please acknowledge"


def _short_text(item: dict) -> str:
    if item["purpose"] == Notification.Purpose.REMINDER:
        return f"{_subject(item)}. {item['message']}".strip()
    text = f"{_subject(item)}."
    if item["ack_url"]:
        text += f" Acknowledge: {item['ack_url']}"
    return text


def build_message(batch: list[Notification]) -> OutgoingMessage:
    """One message for the leader row and the rows batched with it (same channel and address)."""
    leader = batch[0]
    items = [_item(row) for row in batch]
    if len(items) == 1:
        subject = _subject(items[0])
    else:
        subject = f"{len(items)} notifications: " + ", ".join(sorted({i["reference"] for i in items}))
    context = {"items": items, "recipient": leader.recipient, "subject": subject}
    data = {
        "event": leader.purpose,
        "incident": items[0]["reference"],
        "severity": items[0]["severity"],
        "title": items[0]["title"],
        "level": items[0]["level"],
        "url": items[0]["url"],
        "ack_url": items[0]["ack_url"],
        "items": [
            {k: item[k] for k in ("purpose", "reference", "severity", "title", "level", "url", "ack_url")}
            | {"idempotency_key": item["row"].idempotency_key}
            for item in items
        ],
    }
    if leader.endpoint_id:
        data["format"] = leader.endpoint.format
        data["secret"] = leader.endpoint.secret
    if leader.channel == Channel.EMAIL:
        text = render_to_string("paging/email/notification.txt", context)
        html = render_to_string("paging/email/notification.html", context)
    elif leader.channel in (Channel.SMS, Channel.VOICE):
        text, html = " | ".join(_short_text(item) for item in items), ""
    else:
        text, html = "\n".join(_short_text(item) for item in items), ""
    return OutgoingMessage(
        channel=leader.channel,
        address=leader.address,
        recipient=leader.recipient,
        subject=subject,
        text=text,
        html=html,
        idempotency_key=leader.idempotency_key,
        data=data,
    )


# --- locks ---------------------------------------------------------------------------------------------------


def _key_share(incident_ids: list[int], page_ids: list[int]) -> dict[int, str]:
    """Hold the incidents and pages (FOR KEY SHARE) for the rest of the transaction; return the pages' states
    as committed now. Incidents first: the lock order of every service is incident, page, notification."""
    states: dict[int, str] = {}
    if connection.vendor != "postgresql":  # SQLite serialises writers at BEGIN IMMEDIATE already
        if page_ids:
            states = dict(Page.objects.filter(pk__in=page_ids).values_list("pk", "state"))
        return states
    with connection.cursor() as cursor:
        if incident_ids:
            cursor.execute(
                f"SELECT id FROM {Incident._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE",  # noqa: S608
                [sorted(set(incident_ids))],
            )
        if page_ids:
            cursor.execute(
                f"SELECT id, state FROM {Page._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE",  # noqa: S608
                [sorted(set(page_ids))],
            )
            states = dict(cursor.fetchall())
    return states


def _try_contact_lock(channel: str, address: str) -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [f"paging:{channel}:{address}"])
        return bool(cursor.fetchone()[0])


def _last_sent_at(channel: str, address: str, since: datetime) -> datetime | None:
    return (
        Notification.objects.filter(
            channel=channel, address=address, status=Notification.Status.SENT, sent_at__gt=since
        )
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )


def _claimable():
    return (
        Notification.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("incident__severity", "endpoint")
        .filter(status=Notification.Status.PENDING)
    )


# --- outcomes --------------------------------------------------------------------------------------------------


def _mark_sent(batch: list[Notification]) -> None:
    sent_at = timezone.now()
    leader = batch[0]
    for row in batch:
        row.status = Notification.Status.SENT
        row.sent_at = sent_at
        row.attempts += 1
        row.last_attempt_at = sent_at
        row.batched_into = leader if row is not leader else None
        row.save(update_fields=["status", "sent_at", "attempts", "last_attempt_at", "batched_into"])


def _retry(batch: list[Notification], error: Exception, now: datetime) -> None:
    for row in batch:
        row.attempts += 1
        row.last_attempt_at = now
        row.last_error = str(error)[:2000]
        if row.attempts >= settings.PAGING_MAX_ATTEMPTS:
            _fail_row(row, f"gave up after {row.attempts} attempts: {error}", now)
            continue
        backoff = min(settings.PAGING_RETRY_BACKOFF_SECONDS * 2 ** (row.attempts - 1), 600)
        row.scheduled_for = now + timedelta(seconds=backoff)
        row.save(update_fields=["attempts", "last_attempt_at", "last_error", "scheduled_for"])


def _fail_row(row: Notification, reason: str, now: datetime) -> None:
    row.status = Notification.Status.FAILED
    row.last_error = reason[:2000]
    row.last_attempt_at = now
    row.scheduled_for = None
    row.save(update_fields=["status", "last_error", "last_attempt_at", "scheduled_for", "attempts"])
    fallback = None
    if row.person_id and row.endpoint_id is None and row.hotline_id is None:
        fallback = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(
                page_id=row.page_id,
                reminder_id=row.reminder_id,
                purpose=row.purpose,
                level=row.level,
                repeat=row.repeat,
                person_id=row.person_id,
                method_position__gt=row.method_position,
                status__in=[Notification.Status.STANDBY, Notification.Status.PENDING],
            )
            .order_by("method_position", "pk")
            .first()
        )
    body = f"Could not notify {row.recipient} by {row.get_channel_display()}"
    if row.address and row.channel != Channel.WEBHOOK:
        body += f" ({row.address})"
    body += f": {reason}."
    if fallback is not None:
        fallback.status = Notification.Status.PENDING
        fallback.scheduled_for = now
        fallback.save(update_fields=["status", "scheduled_for"])
        body += f" Trying their next contact method: {fallback.get_channel_display()}."
    elif row.person_id:
        body += " No other contact method is left to try."
    events.record(row.incident, kind=EntryKind.SYSTEM, body=body)


def _fail(batch: list[Notification], error: Exception, now: datetime) -> None:
    for row in batch:
        row.attempts += 1
        _fail_row(row, str(error), now)


# --- the sender ----------------------------------------------------------------------------------------------


def deliver_next(*, skip: set[int], now: datetime | None = None) -> str | None:
    """Claim and handle one due notification (with any rows batched into it). Returns what happened, or None
    when nothing is due. Rows whose contact another sender holds are added to `skip`."""
    now = now or timezone.now()
    with transaction.atomic():
        row = _claimable().filter(scheduled_for__lte=now).exclude(pk__in=skip).order_by("scheduled_for", "pk").first()
        if row is None:
            return None
        states = _key_share([row.incident_id], [row.page_id] if row.page_id else [])
        if row.purpose in FENCED_PURPOSES and states.get(row.page_id) in CLOSED_PAGE_STATES:
            row.status = Notification.Status.CANCELLED
            row.scheduled_for = None
            row.save(update_fields=["status", "scheduled_for"])
            return "cancelled"
        if not _try_contact_lock(row.channel, row.address):
            skip.add(row.pk)
            return "busy"
        # The rate limit protects people; a webhook endpoint takes every event as it comes.
        is_contact = row.channel != Channel.WEBHOOK
        window = timedelta(seconds=settings.PAGING_RATE_LIMIT_SECONDS if is_contact else 0)
        last = _last_sent_at(row.channel, row.address, now - window) if window else None
        if last is not None:
            row.scheduled_for = last + window
            row.save(update_fields=["scheduled_for"])
            return "deferred"
        batch = [row] + (_companions(row, now) if is_contact else [])
        try:
            channels.send(build_message(batch))
        except TemporaryFailure as error:
            _retry(batch, error, now)
            return "retry"
        except PermanentFailure as error:
            _fail(batch, error, now)
            return "failed"
        except SoftTimeLimitExceeded:
            raise
        except Exception as error:  # a backend bug must not wedge the outbox: retried, then recorded as failed
            logger.exception("notification %s: unexpected error from the %s backend", row.pk, row.channel)
            _retry(batch, error, now)
            return "retry"
        _mark_sent(batch)
        return "sent"


def _companions(row: Notification, now: datetime) -> list[Notification]:
    """Other due rows for the same channel and address: they go out in the same message (the rate limit's batch)."""
    others = list(
        _claimable()
        .filter(channel=row.channel, address=row.address, scheduled_for__lte=now)
        .exclude(pk=row.pk)
        .order_by("scheduled_for", "pk")[:MAX_BATCH]
    )
    if not others:
        return []
    states = _key_share([o.incident_id for o in others], [o.page_id for o in others if o.page_id])
    keep = []
    for other in others:
        if other.purpose in FENCED_PURPOSES and states.get(other.page_id) in CLOSED_PAGE_STATES:
            other.status = Notification.Status.CANCELLED
            other.scheduled_for = None
            other.save(update_fields=["status", "scheduled_for"])
        else:
            keep.append(other)
    return keep


def deliver_due_notifications(*, limit: int = 10_000, budget_seconds: float = 25.0) -> dict[str, int]:
    """Drain due notifications until none is due, `limit` rows were handled or the time budget is spent."""
    deadline = time.monotonic() + budget_seconds
    skip: set[int] = set()
    counts: dict[str, int] = {}
    handled = 0
    while handled < limit and time.monotonic() < deadline:
        outcome = deliver_next(skip=skip)
        if outcome is None:
            break
        counts[outcome] = counts.get(outcome, 0) + 1
        handled += 1
    return counts


def due_count(*, now: datetime | None = None, cap: int = 1000) -> int:
    now = now or timezone.now()
    return len(
        Notification.objects.filter(status=Notification.Status.PENDING, scheduled_for__lte=now).values_list(
            "pk", flat=True
        )[:cap]
    )

"""The sender: claim a due outbox row, check it is still wanted, send it, mark it sent — in one transaction.

- Claim: FOR UPDATE SKIP LOCKED, so parallel senders and redelivered Celery messages never take the same row.
- Fence: FOR KEY SHARE on the incident and the page while sending. An acknowledgement (FOR UPDATE on both) waits
  for in-flight sends to finish and a sender that starts after it sees the page acknowledged and cancels its row:
  never a notification after the acknowledgement is committed.
- A worker killed mid-send rolls its transaction back; the row is pending again and the next sender takes it.
  Backends get the idempotency key, so a receiver that honours it drops the repeat of such a send.
- Batches: a sender claims up to PAGING_SENDER_BATCH due rows per transaction (a fixed number of statements per
  batch). The default, 1, commits each send on its own: a worker killed mid-batch would otherwise roll back the
  "sent" marks of the batch's earlier sends, and they would go out again. Larger batches trade that (only on a
  crash) for throughput; the fence holds an acknowledgement back for at most one batch of sends.
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
from collections import Counter
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
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


def _contact_locks(contacts: list[tuple[str, str]]) -> list[bool]:
    """Try a transaction-scoped advisory lock per (channel, address), in one statement: a contact is served by one
    sender at a time, so the rate limit holds across parallel senders."""
    if connection.vendor != "postgresql" or not contacts:
        return [True] * len(contacts)
    keys = [f"paging:{channel}:{address}" for channel, address in contacts]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(k)) FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, i) "
            "ORDER BY i",
            [keys],
        )
        return [bool(row[0]) for row in cursor.fetchall()]


def _last_sent(contacts: set[tuple[str, str]], since: datetime) -> dict[tuple[str, str], datetime]:
    """The latest send inside the rate-limit window per contact, in one query."""
    if not contacts:
        return {}
    channels_ = {channel for channel, _ in contacts}
    addresses = {address for _, address in contacts}
    rows = (
        Notification.objects.filter(
            status=Notification.Status.SENT, sent_at__gt=since, channel__in=channels_, address__in=addresses
        )
        .values_list("channel", "address")
        .annotate(last=Max("sent_at"))
    )
    return {(channel, address): last for channel, address, last in rows if (channel, address) in contacts}


def _claimable():
    return (
        Notification.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("incident__severity", "endpoint")
        .filter(status=Notification.Status.PENDING)
    )


# --- outcomes --------------------------------------------------------------------------------------------------


def _mark_sent(batches: list[list[Notification]]) -> None:
    """Mark delivered rows sent in one statement; rows batched into another row's message point at it."""
    rows = []
    for batch in batches:
        leader = batch[0]
        for row in batch:
            row.status = Notification.Status.SENT
            row.attempts += 1
            row.last_attempt_at = row.sent_at
            row.batched_into = leader if row is not leader else None
            rows.append(row)
    if rows:
        Notification.objects.bulk_update(rows, ["status", "sent_at", "attempts", "last_attempt_at", "batched_into"])


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


def deliver_batch(*, skip: set[int], now: datetime | None = None, size: int | None = None) -> Counter | None:
    """Claim up to `size` due notifications in one transaction and handle them: cancel those whose page was
    acknowledged or stopped, defer those inside their contact's rate-limit window, send the rest (rows for the
    same contact go out as one message) and record the outcome. Returns the outcomes, or None when nothing is
    due. Rows whose contact another sender holds right now are added to `skip`."""
    now = now or timezone.now()
    size = size or settings.PAGING_SENDER_BATCH
    outcomes: Counter = Counter()
    with transaction.atomic():
        rows = list(
            _claimable().filter(scheduled_for__lte=now).exclude(pk__in=skip).order_by("scheduled_for", "pk")[:size]
        )
        if not rows:
            return None
        states = _key_share([r.incident_id for r in rows], [r.page_id for r in rows if r.page_id])
        live = []
        for row in rows:
            if row.purpose in FENCED_PURPOSES and states.get(row.page_id) in CLOSED_PAGE_STATES:
                row.status, row.scheduled_for = Notification.Status.CANCELLED, None
                row.save(update_fields=["status", "scheduled_for"])
                outcomes["cancelled"] += 1
            else:
                live.append(row)
        # One message per contact: the rate limit's batch. Webhook endpoints take every event on its own.
        groups: dict[tuple, list[Notification]] = {}
        for row in live:
            key = (row.channel, row.address) if row.channel != Channel.WEBHOOK else ("webhook", row.pk)
            groups.setdefault(key, []).append(row)
        contacts = [key for key in groups if key[0] != "webhook"]
        held = dict(zip(contacts, _contact_locks(contacts), strict=True))
        window = timedelta(seconds=settings.PAGING_RATE_LIMIT_SECONDS)
        recent = _last_sent({c for c in contacts if held[c]}, now - window) if window else {}
        sent: list[list[Notification]] = []
        for key, batch in groups.items():
            if key[0] != "webhook":
                if not held[key]:
                    skip.update(row.pk for row in batch)
                    outcomes["busy"] += len(batch)
                    continue
                if key in recent:
                    for row in batch:
                        row.scheduled_for = recent[key] + window
                        row.save(update_fields=["scheduled_for"])
                    outcomes["deferred"] += len(batch)
                    continue
                if batch[0].scheduled_for > batch[0].created_at:
                    # A row that waited (rate limit, retry, method delay): others for the contact that are due
                    # now go out in the same message.
                    batch.extend(_companions(batch, now))
            outcome = _send(batch, now)
            outcomes[outcome] += 1
            if outcome == "sent":
                sent.append(batch)
        _mark_sent(sent)
    return outcomes


def _companions(batch: list[Notification], now: datetime) -> list[Notification]:
    leader = batch[0]
    others = list(
        _claimable()
        .filter(channel=leader.channel, address=leader.address, scheduled_for__lte=now)
        .exclude(pk__in=[row.pk for row in batch])
        .order_by("scheduled_for", "pk")[:50]
    )
    if not others:
        return []
    states = _key_share([o.incident_id for o in others], [o.page_id for o in others if o.page_id])
    keep = []
    for other in others:
        if other.purpose in FENCED_PURPOSES and states.get(other.page_id) in CLOSED_PAGE_STATES:
            other.status, other.scheduled_for = Notification.Status.CANCELLED, None
            other.save(update_fields=["status", "scheduled_for"])
        else:
            keep.append(other)
    return keep


def _send(batch: list[Notification], now: datetime) -> str:
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
        logger.exception("notification %s: unexpected error from the %s backend", batch[0].pk, batch[0].channel)
        _retry(batch, error, now)
        return "retry"
    sent_at = timezone.now()
    for row in batch:
        row.sent_at = sent_at
    return "sent"


def deliver_due_notifications(*, limit: int = 100_000, budget_seconds: float = 25.0) -> dict[str, int]:
    """Drain due notifications until none is due, about `limit` rows were handled or the time budget is spent."""
    deadline = time.monotonic() + budget_seconds
    skip: set[int] = set()
    counts: Counter = Counter()
    while sum(counts.values()) < limit and time.monotonic() < deadline:
        outcomes = deliver_batch(skip=skip)
        if outcomes is None:
            break
        counts.update(outcomes)
    return dict(counts)


def due_count(*, now: datetime | None = None, cap: int = 1000) -> int:
    now = now or timezone.now()
    return len(
        Notification.objects.filter(status=Notification.Status.PENDING, scheduled_for__lte=now).values_list(
            "pk", flat=True
        )[:cap]
    )

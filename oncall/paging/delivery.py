"""The sender: claim due outbox rows, check they are still wanted, send them, mark them sent.

- Claim: up to PAGING_SENDER_BATCH due rows per transaction, FOR UPDATE SKIP LOCKED, so parallel senders and
  redelivered Celery messages never take the same row; one prepared statement loads everything a send needs.
- Fence: FOR KEY SHARE on the incidents and pages of the batch while sending. An acknowledgement (FOR UPDATE on
  both) waits for the batch's in-flight sends to finish — at most PAGING_SENDER_BATCH_SECONDS of sends, then the
  batch commits and leaves the rows it has not reached yet — and a sender that claims after it sees the page
  acknowledged and cancels its rows: never a notification after the acknowledgement is committed.
- Exactly once: each send commits a sent mark on the sender's own connection before the next send (sentmarks).
  A worker killed mid-batch rolls its transaction back and its rows are pending again; the next sender records the
  marked ones as sent without sending them and sends the rest. Only a send cut off between the provider's answer
  and its mark can repeat, with the same idempotency key (backends pass it on). On SQLite (no marks) a sender
  sends one row per transaction, which gives the same guarantee.
- Rate limit: one message per channel per address per PAGING_RATE_LIMIT_SECONDS (a transaction-scoped advisory
  lock serialises senders per address); rows due inside the window wait for it and go out together as one
  batched message, as do a contact's rows claimed together.
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
from django.db.models import Max, Q
from django.utils import timezone

from incidentportal.db import prepared_cursor
from incidents import timeline
from incidents.models import Incident, SeverityPolicy
from incidents.timeline import paging as paging_timeline

from . import channels, sentmarks
from .channels import PermanentFailure, TemporaryFailure
from .messages import FENCED_PURPOSES, build_message
from .models import Channel, Notification, Page, SentMark, WebhookEndpoint
from .services.engine import wake_senders

logger = logging.getLogger("oncall.paging.delivery")

CLOSED_PAGE_STATES = {Page.State.ACKNOWLEDGED, Page.State.STOPPED}


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


def _last_sent(contacts: set[tuple[str, str]], since: datetime) -> dict[tuple[str, str], datetime]:
    """The latest send inside the rate-limit window per contact, in one query (SQLite; PostgreSQL's claim
    statement reads it along)."""
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


def _columns(model, alias: str) -> tuple[list[str], str]:
    fields = [f.attname for f in model._meta.concrete_fields]
    return fields, ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


_N_FIELDS, _N_COLS = _columns(Notification, "n")
_I_FIELDS, _I_COLS = _columns(Incident, "i")
_S_FIELDS, _S_COLS = _columns(SeverityPolicy, "s")
_E_FIELDS, _E_COLS = _columns(WebhookEndpoint, "e")

# On PostgreSQL one statement claims the due rows and takes everything the sender needs before sending, in the
# lock order every service uses (incident, page, notification; the claim itself skips, so it never waits):
# - `claimed` reads the outbox table alone, down the due index, so a claim costs the same with ten or ten thousand
#   rows due (joined to the incidents, PostgreSQL would sort every due row first);
# - `fenced_incidents`, then `fenced_pages` (its one-time filter reads `fenced_incidents` first): FOR KEY SHARE,
#   the fence against acknowledgements, returning the pages' states as committed once any acknowledgement ahead
#   of us has finished;
# - `held`: the contact's advisory lock (the rate limit's; skipped for cancelled rows and webhook endpoints) and
#   `last_sent`: the contact's latest send inside the rate-limit window;
# - whether the row carries a sent mark (its sender died after sending it: recorded, not sent again).
# Written out rather than built by the ORM per send: building it cost more than the send itself.
CLAIM_SQL = f"""
WITH claimed AS MATERIALIZED (
    SELECT id, incident_id, page_id FROM {Notification._meta.db_table}
    WHERE status = 'pending' AND scheduled_for <= %(now)s AND id <> ALL(%(skip)s::bigint[])
    ORDER BY scheduled_for, id LIMIT %(size)s FOR UPDATE SKIP LOCKED
), fenced_incidents AS MATERIALIZED (
    SELECT id FROM {Incident._meta.db_table} WHERE id IN (SELECT incident_id FROM claimed)
    ORDER BY id FOR KEY SHARE
), fenced_pages AS MATERIALIZED (
    SELECT id, state FROM {Page._meta.db_table}
    WHERE id IN (SELECT page_id FROM claimed) AND (SELECT count(*) FROM fenced_incidents) >= 0
    ORDER BY id FOR KEY SHARE
)
SELECT {_N_COLS}, {_I_COLS}, {_S_COLS}, {_E_COLS}, p.state, m.notification_id IS NOT NULL,
    CASE WHEN n.channel = 'webhook' OR (n.purpose IN ('page', 'hotline') AND p.state IN ('acknowledged', 'stopped'))
        THEN NULL ELSE pg_try_advisory_xact_lock(hashtext('paging:' || n.channel || ':' || n.address)) END,
    (SELECT max(r.sent_at) FROM {Notification._meta.db_table} r
     WHERE r.channel = n.channel AND r.address = n.address AND r.status = 'sent' AND r.sent_at > %(since)s)
FROM claimed
JOIN fenced_incidents fi ON fi.id = claimed.incident_id
JOIN {Notification._meta.db_table} n ON n.id = claimed.id
JOIN {Incident._meta.db_table} i ON i.id = n.incident_id
JOIN {SeverityPolicy._meta.db_table} s ON s.id = i.severity_id
LEFT JOIN {WebhookEndpoint._meta.db_table} e ON e.id = n.endpoint_id
LEFT JOIN fenced_pages p ON p.id = n.page_id
LEFT JOIN {SentMark._meta.db_table} m ON m.notification_id = n.id
ORDER BY n.scheduled_for, n.id
"""  # noqa: S608


class Claim:
    """Rows claimed by one sender transaction, with the pages' states (fenced), the contacts whose advisory lock
    this transaction holds and each contact's latest send inside the rate-limit window."""

    def __init__(self):
        self.rows: list[Notification] = []
        self.page_states: dict[int, str] = {}
        self.held: dict[tuple[str, str], bool] = {}
        self.last_sent: dict[tuple[str, str], datetime] = {}
        self.marked: list[int] = []


def _hydrate(values: tuple, claim: Claim) -> None:
    """Model instances from one row of CLAIM_SQL, as select_related would build them."""
    a, b = len(_N_FIELDS), len(_N_FIELDS) + len(_I_FIELDS)
    c, d = b + len(_S_FIELDS), b + len(_S_FIELDS) + len(_E_FIELDS)
    row = Notification.from_db("default", _N_FIELDS, values[:a])
    incident = Incident.from_db("default", _I_FIELDS, values[a:b])
    incident.severity = SeverityPolicy.from_db("default", _S_FIELDS, values[b:c])
    row.incident = incident
    row.endpoint = WebhookEndpoint.from_db("default", _E_FIELDS, values[c:d]) if row.endpoint_id else None
    page_state, marked, held, last_sent = values[d:]
    claim.rows.append(row)
    if marked:
        claim.marked.append(row.pk)
    if row.page_id:
        claim.page_states[row.page_id] = page_state
    contact = (row.channel, row.address)
    if held is not None:
        claim.held[contact] = held
    if last_sent is not None:
        claim.last_sent[contact] = last_sent


def _claim(now: datetime, skip: set[int], size: int, since: datetime) -> Claim:
    """Lock up to `size` due rows (skipping rows other senders hold) and load what sending them needs."""
    claim = Claim()
    if connection.vendor == "postgresql":
        with prepared_cursor() as cursor:
            cursor.execute(CLAIM_SQL, {"now": now, "skip": sorted(skip), "size": size, "since": since})
            for values in cursor.fetchall():
                _hydrate(values, claim)
        return claim
    # SQLite serialises writers at BEGIN IMMEDIATE: no row or advisory locks to take.
    claim.rows = list(
        Notification.objects.select_related("incident__severity", "endpoint")
        .filter(status=Notification.Status.PENDING, scheduled_for__lte=now)
        .exclude(pk__in=skip)
        .order_by("scheduled_for", "pk")[:size]
    )
    claim.page_states = _key_share([], [row.page_id for row in claim.rows if row.page_id])
    contacts = {(row.channel, row.address) for row in claim.rows if row.channel != Channel.WEBHOOK}
    claim.held = dict.fromkeys(contacts, True)
    claim.last_sent = _last_sent(contacts, since)
    return claim


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
    if not rows:
        return
    if connection.vendor != "postgresql":
        Notification.objects.bulk_update(
            rows,
            [
                "status",
                "sent_at",
                "attempts",
                "last_attempt_at",
                "batched_into",
                "receipt",
                "receipt_at",
                "provider_id",
            ],
        )
        return
    # One plain UPDATE from arrays (bulk_update's CASE per column costs more to build than the send itself), which
    # deletes the rows' sent marks: from this commit on, the rows say it themselves.
    with prepared_cursor() as cursor:
        cursor.execute(
            f"WITH marks AS (DELETE FROM {SentMark._meta.db_table} WHERE notification_id = ANY(%s::bigint[])) "  # noqa: S608
            f"UPDATE {Notification._meta.db_table} AS n SET status = 'sent', sent_at = v.sent_at, "  # noqa: S608
            "last_attempt_at = v.sent_at, attempts = v.attempts, batched_into_id = v.batched_into, "
            "receipt = v.receipt, receipt_at = v.sent_at, provider_id = v.provider_id "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::int[], %s::bigint[], %s::varchar[], %s::varchar[]) "
            "AS v(id, sent_at, attempts, batched_into, receipt, provider_id) WHERE n.id = v.id",
            [
                [row.pk for row in rows],
                [row.pk for row in rows],
                [row.sent_at for row in rows],
                [row.attempts for row in rows],
                [row.batched_into_id for row in rows],
                [row.receipt for row in rows],
                [row.provider_id for row in rows],
            ],
        )


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
    fallback = next_rule(row, now)
    if fallback is not None:
        fallback.status = Notification.Status.PENDING
        fallback.scheduled_for = now
        fallback.save(update_fields=["status", "scheduled_for"])
        transaction.on_commit(_wake)
    timeline.record(
        paging_timeline.notification_failed(row.incident, notification=row, reason=reason, fallback=fallback)
    )


def next_rule(row: Notification, now: datetime) -> Notification | None:
    """The person's next notification for the same page step that is still waiting for its time (or on standby,
    from before rules): a failed or unanswered delivery brings it forward to now. Rows a sender holds are skipped
    (they are being sent already)."""
    if not row.person_id or row.endpoint_id is not None or row.hotline_id is not None:
        return None
    return (
        Notification.objects.select_for_update(skip_locked=True)
        .filter(
            page_id=row.page_id,
            reminder_id=row.reminder_id,
            purpose=row.purpose,
            level=row.level,
            repeat=row.repeat,
            person_id=row.person_id,
        )
        .filter(Q(status=Notification.Status.STANDBY) | Q(status=Notification.Status.PENDING, scheduled_for__gt=now))
        .exclude(pk=row.pk)
        .order_by("scheduled_for", "method_position", "pk")
        .first()
    )


def _wake() -> None:
    wake_senders()


def _fail(batch: list[Notification], error: Exception, now: datetime) -> None:
    for row in batch:
        row.attempts += 1
        _fail_row(row, str(error), now)


# --- the sender ----------------------------------------------------------------------------------------------


def deliver_batch(*, skip: set[int], now: datetime | None = None, size: int | None = None) -> Counter | None:
    """Claim up to `size` due notifications in one transaction and handle them: cancel those whose page was
    acknowledged or stopped, defer those inside their contact's rate-limit window, send the rest (rows for the
    same contact go out as one message) and record the outcome. Returns the outcomes, or None when nothing is
    due. Rows whose contact another sender holds right now are added to `skip`.

    Sends stop once PAGING_SENDER_BATCH_SECONDS have passed (an acknowledgement waits for the batch's commit);
    the claimed rows not reached yet stay pending for the next claim."""
    now = now or timezone.now()
    marks = sentmarks.enabled()
    size = (size or settings.PAGING_SENDER_BATCH) if marks else 1
    deadline = time.monotonic() + settings.PAGING_SENDER_BATCH_SECONDS
    outcomes: Counter = Counter()
    window = timedelta(seconds=settings.PAGING_RATE_LIMIT_SECONDS)
    with transaction.atomic():
        claim = _claim(now, skip, size, since=now - window)
        if not claim.rows:
            return None
        # Rows a sender sent before its worker died: recorded as sent from their marks, not sent again.
        restored = set(sentmarks.restore(claim.marked))
        outcomes["recovered"] += len(restored)
        live = []
        for row in claim.rows:
            if row.pk in restored:
                continue
            if row.purpose in FENCED_PURPOSES and claim.page_states.get(row.page_id) in CLOSED_PAGE_STATES:
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
        held = claim.held
        recent = claim.last_sent if window else {}
        sent: list[list[Notification]] = []
        for key, batch in groups.items():
            if sent and time.monotonic() > deadline:
                break  # the rest stay pending: released at the commit, claimed again at once
            if key[0] != "webhook":
                if not held.get(key):
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
                if marks:
                    sentmarks.write(batch)
                sent.append(batch)
        _mark_sent(sent)
    return +outcomes


def _companions(batch: list[Notification], now: datetime) -> list[Notification]:
    leader = batch[0]
    others = list(
        _claimable()
        .filter(channel=leader.channel, address=leader.address, scheduled_for__lte=now)
        .exclude(pk__in=[row.pk for row in batch])
        .order_by("scheduled_for", "pk")[:50]
    )
    # Rows a dead sender had sent already are recorded as sent from their marks, not sent again in this message.
    restored = set(sentmarks.restore([other.pk for other in others]))
    others = [other for other in others if other.pk not in restored]
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
        handed = channels.send(build_message(batch))
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
    handed = handed or channels.Handed()
    for row in batch:
        row.sent_at = sent_at
        row.receipt = handed.receipt
        row.receipt_at = sent_at
        row.provider_id = handed.provider_id if row is batch[0] else ""
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

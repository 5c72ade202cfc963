"""The escalation engine: the timer tick that advances due pages level by level (catching up on missed steps),
"press 2" escalations, and the batched writes (page timers, timeline entries, outbox rows, audit records) every
escalation flushes.
The package's invariants (services/__init__.py) hold here too.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from incidentportal.celery import registered_task
from incidentportal.db import claim_due_rows
from incidents import timeline
from incidents.audit.recorder import BulkRecorder, snapshot
from incidents.errors import DomainError
from incidents.models import Incident, TimelineEntry
from incidents.timeline import paging as paging_timeline
from oncall.escalation import escalation_times
from oncall.models import EscalationLevel, Hotline, Person

from ..models import Channel, Notification, Page
from .recipients import EscalationContext, hotline_notifications, person_notifications, when_sent

logger = logging.getLogger("oncall.paging")


def wake_senders() -> None:
    """Ask the notification workers to deliver now. Best effort: a lost message delays nothing beyond the next
    outbox tick, so a broker hiccup must not fail the transaction that already committed."""
    deliver_notifications = registered_task("oncall.paging.tasks.deliver_notifications")
    for _ in range(max(1, settings.PAGING_SENDER_PARALLELISM)):
        try:
            deliver_notifications.apply_async(expires=max(settings.TIMER_TICK_SECONDS * 10, 30))
        except Exception:  # noqa: BLE001 - the broker may be down; the outbox tick catches up
            logger.warning("could not enqueue deliver_notifications; the outbox tick will catch up", exc_info=True)
            return


def wake_senders_on_commit() -> None:
    transaction.on_commit(partial(wake_senders))


PAGE_TIMER_FIELDS = [
    "state",
    "escalation_level",
    "repeat",
    "pass_started_at",
    "escalate_at",
    "last_escalated_at",
    "hotlines_alerted_at",
    "acknowledge_due_at",
]


def update_page_timers(pages: list[Page]) -> None:
    """One UPDATE ... FROM unnest(...) for the pages' timer fields (Django's bulk_update builds a CASE per field
    and row, which costs more than the escalation itself)."""
    if connection.vendor != "postgresql":
        Page.objects.bulk_update(pages, PAGE_TIMER_FIELDS)
        return
    types = {
        "state": "varchar",
        "escalation_level": "smallint",
        "repeat": "smallint",
        "pass_started_at": "timestamptz",
        "escalate_at": "timestamptz",
        "last_escalated_at": "timestamptz",
        "hotlines_alerted_at": "timestamptz",
        "acknowledge_due_at": "timestamptz",
    }
    columns = ", ".join(f'"{name}" = v."{name}"' for name in PAGE_TIMER_FIELDS)
    arrays = ", ".join(f"%s::{types[name]}[]" for name in PAGE_TIMER_FIELDS)
    names = ", ".join(f'"{name}"' for name in PAGE_TIMER_FIELDS)
    sql = (
        f"UPDATE {Page._meta.db_table} AS p SET {columns} "  # noqa: S608 - names are constants
        f'FROM unnest(%s::bigint[], {arrays}) AS v("id", {names}) WHERE p."id" = v."id"'
    )
    params = [[page.pk for page in pages]] + [[getattr(page, name) for page in pages] for name in PAGE_TIMER_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


class EscalationWrites:
    """What escalations write, flushed in a handful of statements however many pages a batch holds: page updates
    (bulk_update), system timeline entries and outbox rows (bulk_create), and the audit records of the page
    changes and timeline entries. Bulk writes bypass the audit signals: their records go through the audit trail's
    BulkRecorder, one statement."""

    def __init__(self):
        self.pages: dict[int, tuple[Page, dict]] = {}
        self.entries: list[TimelineEntry] = []
        self.notifications: list[Notification] = []

    def track(self, page: Page) -> None:
        if page.pk not in self.pages:
            self.pages[page.pk] = (page, snapshot(page))

    def entry(self, entry: TimelineEntry) -> None:
        """A timeline entry built by incidents.timeline, inserted with the others at flush."""
        self.entries.append(entry)

    def flush(self) -> None:
        audit = BulkRecorder()
        changed_pages = []
        for page, before in self.pages.values():
            after = snapshot(page)
            if audit.changed(page, before=before, after=after, incident_id=page.incident_id):
                changed_pages.append(page)
        if changed_pages:
            update_page_timers(changed_pages)
        if self.entries:
            # Every writer of escalations holds the pages' incident rows (the tick claims them with the pages).
            timeline.record_all(self.entries, incidents_locked=True)
            for entry in self.entries:
                audit.created(entry, incident_id=entry.incident_id)
        if self.notifications:
            Notification.objects.bulk_create(self.notifications, ignore_conflicts=True)
            wake_senders_on_commit()
        audit.flush()
        self.pages, self.entries, self.notifications = {}, [], []


def _level_notifications(page: Page, level: EscalationLevel, position: int, at: datetime, context) -> tuple:
    """Outbox rows and the timeline lines for one level firing."""
    rows: list[Notification] = []
    reached, unreachable = [], []
    key_prefix = f"page:{page.pk}:l{position}:r{page.repeat}"
    common = {
        "incident_id": page.incident_id,
        "page": page,
        "purpose": Notification.Purpose.PAGE,
        "level": position,
        "repeat": page.repeat,
        "message": page.message,
    }
    for target in level.targets.all():
        recipient = context.resolve(target, at, page.team_id)
        made = []
        if recipient.hotline is not None:
            made = hotline_notifications(recipient.hotline, at=at, key_prefix=key_prefix, **common)
        elif recipient.person is not None:
            made = person_notifications(
                recipient.person,
                rules=context.rules(recipient.person),
                at=at,
                key_prefix=key_prefix,
                label=recipient.label,
                **common,
            )
        if made:
            rows.extend(made)
            channels = ", ".join(when_sent(row, at) for row in made if row.status == Notification.Status.PENDING)
            reached.append(f"{recipient.label} ({channels})")
        else:
            unreachable.append(recipient.label)
    for endpoint in context.endpoints():
        if endpoint.team_id and endpoint.team_id != page.team_id:
            continue
        rows.append(
            Notification(
                idempotency_key=f"{key_prefix}:e{endpoint.pk}:webhook",
                endpoint=endpoint,
                recipient=endpoint.name,
                channel=Channel.WEBHOOK,
                address=endpoint.url,
                scheduled_for=at,
                **common,
            )
        )
    return rows, reached, unreachable


def _fire_level(page: Page, levels, index: int, at: datetime, context, writes) -> list[Notification]:
    level = levels[index]
    rows, reached, unreachable = _level_notifications(page, level, index, at, context)
    page.escalation_level = index
    page.last_escalated_at = context.now
    if page.acknowledge_due_at is None:
        page.acknowledge_due_at = at + settings.ACKNOWLEDGE_TARGET
    writes.entry(
        paging_timeline.level_paged(
            page,
            level=index,
            level_name=level.name,
            repeat=page.repeat,
            passes=settings.PAGING_REPEAT_POLICY_TIMES,
            reached=reached,
            unreachable=unreachable,
        )
    )
    return rows


def _alert_hotlines(page: Page, context, writes) -> list[Notification]:
    hotlines = list(Hotline.objects.filter(kind=Hotline.Kind.ESCALATION_HOTLINE).select_related("person"))
    key_prefix = f"page:{page.pk}:hotlines"
    rows = []
    for hotline in hotlines:
        rows.extend(
            hotline_notifications(
                hotline,
                at=context.now,
                key_prefix=key_prefix,
                incident_id=page.incident_id,
                page=page,
                purpose=Notification.Purpose.HOTLINE,
                repeat=page.repeat,
            )
        )
    writes.entry(
        paging_timeline.hotlines_alerted(
            page, hotlines=[str(h) for h in hotlines], passes=settings.PAGING_REPEAT_POLICY_TIMES
        )
    )
    page.hotlines_alerted_at = context.now
    page.state = Page.State.EXHAUSTED
    page.escalate_at = None
    return rows


def advance_page(page: Page, context: EscalationContext, writes: EscalationWrites) -> list[Notification]:
    """Do every step of a locked, active page that is due at context.now: fire due levels, start the next pass,
    or alert the hotlines; then set escalate_at to the next step. Catches up on steps missed while no tick ran.
    The page update, timeline entries and outbox rows (ON CONFLICT DO NOTHING) go to `writes`; flush it."""
    writes.track(page)
    now = context.now
    levels = context.levels(page.policy_id)
    severity = page.severity
    rows: list[Notification] = []
    for _ in range(100):  # bounded: at most a few steps are ever due at once
        if page.state != Page.State.ACTIVE or page.escalate_at is None or page.escalate_at > now:
            break
        times = escalation_times([level.delay for level in levels], severity, page.pass_started_at)
        next_index = 0 if page.escalation_level is None else page.escalation_level + 1
        if next_index < len(times):
            if times[next_index] > now:
                page.escalate_at = times[next_index]
                continue
            rows.extend(_fire_level(page, levels, next_index, times[next_index], context, writes))
            following = next_index + 1
            if following < len(times):
                page.escalate_at = times[following]
            elif severity.escalation_delay is None or not levels:
                page.escalate_at = None  # does not escalate (P3): wait for an acknowledgement
            else:
                # After the last level, the acknowledge target passes before the next pass (or the hotlines).
                page.escalate_at = times[-1] + settings.ACKNOWLEDGE_TARGET
            continue
        # The pass is over and its last level's acknowledge target has passed.
        if page.is_added and (not levels or page.repeat + 1 >= settings.PAGING_REPEAT_POLICY_TIMES):
            # An added team that never acknowledged: said on the timeline; the hotlines are the incident's own
            # paging run's last resort, not every added team's.
            page.state, page.escalate_at = Page.State.EXHAUSTED, None
            writes.entry(paging_timeline.added_page_unanswered(page, target=page.target_label))
            break
        if not levels or page.repeat + 1 >= settings.PAGING_REPEAT_POLICY_TIMES:
            rows.extend(_alert_hotlines(page, context, writes))
            break
        page.repeat += 1
        page.pass_started_at = page.escalate_at
        page.escalation_level = None
    writes.notifications.extend(rows)
    return rows


def escalate_due_pages(*, limit: int = 200, now: datetime | None = None) -> int:
    """One batch of the escalation tick, in one transaction: claim due pages (FOR UPDATE SKIP LOCKED), advance
    each, write their outbox rows. Returns the number of pages advanced; several ticks at once never double work."""
    now = now or timezone.now()
    with transaction.atomic():
        # Page and incident rows together, neither waited for: a busy incident is picked up by the next tick.
        pages = claim_page_rows(Page.objects.due(now), limit)
        if not pages:
            return 0
        context = EscalationContext(now)
        context.prepare(pages, window_start=min(page.escalate_at for page in pages))
        writes = EscalationWrites()
        for page in pages:
            advance_page(page, context, writes)
        writes.flush()
    return len(pages)


def run_escalation_tick(*, budget_seconds: float = 20.0, batch: int = 200) -> int:
    """Drain due escalations in batches until none is due or the time budget is spent."""
    deadline = time.monotonic() + budget_seconds
    total = 0
    while time.monotonic() < deadline:
        done = escalate_due_pages(limit=batch)
        total += done
        if done < batch:
            break
    return total


def escalate_now(*, page_id: int, person: Person | None, via: str) -> Page:
    """Someone paged asked to escalate ("press 2" on a call): the page's next step fires now and its later steps
    move up by the same time. Locks the incident, then the page, like every paging change."""
    with transaction.atomic():
        incident_id = Page.objects.values_list("incident_id", flat=True).get(pk=page_id)
        Incident.objects.select_for_update().filter(pk=incident_id).first()
        page = Page.objects.select_for_update().select_related("incident", "severity").get(pk=page_id)
        if page.state != Page.State.ACTIVE:
            raise DomainError(f"This page is {page.get_state_display().lower()}; nothing to escalate.")
        now = timezone.now()
        context = EscalationContext(now)
        levels = context.levels(page.policy_id)
        writes = EscalationWrites()
        writes.track(page)
        times = escalation_times([level.delay for level in levels], page.severity, page.pass_started_at)
        next_index = 0 if page.escalation_level is None else page.escalation_level + 1
        if next_index < len(times) and times[next_index] > now:
            page.pass_started_at -= times[next_index] - now
        page.escalate_at = now
        who = str(person) if person is not None else "Someone paged"
        writes.entry(paging_timeline.escalation_requested(page, name=who, via=via))
        advance_page(page, context, writes)
        writes.flush()
    return page


def claim_page_rows(queryset, limit: int) -> list[Page]:
    """Due pages with their incidents, claimed for this tick (incidentportal.db.claim_due_rows)."""
    return claim_due_rows(
        queryset.select_related("incident", "severity"),
        order_by=("escalate_at", "pk"),
        limit=limit,
        of=("self", "incident"),
    )

"""Paging: start, escalate, acknowledge, stop. Every function here runs inside one transaction and keeps these
invariants:

- Lock order is incident row, then page rows, then notification rows. User actions (acknowledge, resolve,
  severity raise) lock the incident FOR UPDATE first (incidents.services does), then the pages. The timer ticks
  never wait: they claim page *and* incident rows with SKIP LOCKED, so a tick skips an incident a person is
  changing right now and picks it up on the next tick. Senders take FOR KEY SHARE on the incident and page while
  they send, so an acknowledgement commits only after every in-flight send has finished: never a notification
  after the acknowledgement is committed.
- A page never returns to ACTIVE once acknowledged or stopped (no reopened pages).
- Outbox rows are written in the transaction that decided to notify, with a unique idempotency key
  (page, level, repeat, recipient, channel, method), inserted with ON CONFLICT DO NOTHING: doing a step twice
  writes nothing twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from incidentportal.celery import registered_task
from incidents import access, timeline
from incidents.audit.recorder import BulkRecorder, snapshot
from incidents.errors import DomainError, PermissionDenied
from incidents.models import Incident, TimelineEntry
from oncall import selectors as oncall_selectors
from oncall import services as oncall_services
from oncall.escalation import escalation_times
from oncall.models import (
    ContactMethod,
    EscalationLevel,
    EscalationTarget,
    Hotline,
    NotificationRule,
    Person,
    Rotation,
    Team,
)

from . import channels, sentmarks
from .models import Channel, Notification, Page, WebhookEndpoint

logger = logging.getLogger("oncall.paging")

CLOSED_PAGE_STATES = (Page.State.ACKNOWLEDGED, Page.State.STOPPED)
# For a person with no notification rules: what the directory entry allows, the seeded defaults' shape.
DEFAULT_RULES = ((Channel.SMS, timedelta(0)), (Channel.EMAIL, timedelta(0)), (Channel.VOICE, timedelta(minutes=3)))


# --- recipients ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """Whom one escalation target reaches at a given time. `person` None + `hotline` None = nobody (a gap)."""

    label: str
    person: Person | None = None
    hotline: Hotline | None = None


class EscalationContext:
    """What a batch of escalations needs, loaded with a fixed number of queries however many pages it holds:
    policies' levels and targets, the teams' rotation plans, team leads, contact methods, webhook endpoints."""

    def __init__(self, now: datetime):
        self.now = now
        self._levels: dict[int, list[EscalationLevel]] = {}
        self._plans: dict[int, list] = {}
        self._teams: dict[int, Team] = {}
        self._rules: dict[int, list[NotificationRule]] = {}
        self._endpoints: list[WebhookEndpoint] | None = None

    def levels(self, policy_id: int | None) -> list[EscalationLevel]:
        if policy_id is None:
            return []
        if policy_id not in self._levels:
            self._load_levels([policy_id])
        return self._levels[policy_id]

    def _load_levels(self, policy_ids) -> None:
        missing = [pk for pk in policy_ids if pk is not None and pk not in self._levels]
        if not missing:
            return
        for pk in missing:
            self._levels[pk] = []
        levels = (
            EscalationLevel.objects.filter(policy_id__in=missing)
            .order_by("policy_id", "position", "pk")
            .prefetch_related("targets__person", "targets__hotline__person", "targets__team__team_lead")
        )
        for level in levels:
            self._levels[level.policy_id].append(level)

    def prepare(self, pages: list[Page], *, window_start: datetime | None = None) -> None:
        """Load everything the pages' escalations can need: 3 queries for levels, 3 for rotations, 1 for teams,
        1 for notification rules (with their contact methods), 1 for webhook endpoints."""
        self._load_levels({page.policy_id for page in pages})
        team_ids = {page.team_id for page in pages if page.team_id}
        for page in pages:
            for level in self.levels(page.policy_id):
                for target in level.targets.all():
                    if target.team_id:
                        team_ids.add(target.team_id)
        team_ids -= set(self._teams)
        start = min([window_start or self.now, self.now]) - timedelta(hours=1)
        if team_ids:
            self._teams.update(Team.objects.select_related("team_lead").in_bulk(team_ids))
            plans = oncall_selectors.rotation_plans(
                Rotation.objects.filter(is_active=True, team_id__in=team_ids).order_by("name"),
                start=start,
                end=self.now + timedelta(days=1),
            )
            for team_id in team_ids:
                self._plans.setdefault(team_id, [])
            for plan in plans:
                self._plans[plan.rotation.team_id].append(plan)
        people = set()
        for plans in self._plans.values():
            for plan in plans:
                for members in plan.members.values():
                    people.update(person.pk for person in members)
                for override_timeline in plan._overrides.values():
                    people.update(override.person_id for override in override_timeline.overrides)
        for team in self._teams.values():
            if team.team_lead_id:
                people.add(team.team_lead_id)
        for page in pages:
            for level in self.levels(page.policy_id):
                for target in level.targets.all():
                    if target.person_id:
                        people.add(target.person_id)
                    if target.hotline_id and target.hotline.person_id:
                        people.add(target.hotline.person_id)
        self.load_methods(people)

    def load_methods(self, person_ids) -> None:
        """The people's notification rules whose contact method is active, earliest first, in one query."""
        missing = {pk for pk in person_ids if pk and pk not in self._rules}
        if not missing:
            return
        for pk in missing:
            self._rules[pk] = []
        rules = (
            NotificationRule.objects.filter(person_id__in=missing, contact_method__is_active=True)
            .select_related("contact_method")
            .order_by("person_id", "delay_minutes", "contact_method__position", "pk")
        )
        for rule in rules:
            self._rules[rule.person_id].append(rule)

    def rules(self, person: Person) -> list[NotificationRule]:
        if person.pk not in self._rules:
            self.load_methods([person.pk])
        return self._rules[person.pk]

    def team(self, team_id: int | None) -> Team | None:
        if team_id is None:
            return None
        if team_id not in self._teams:
            team = Team.objects.select_related("team_lead").filter(pk=team_id).first()
            if team is None:
                return None
            self._teams[team_id] = team
        return self._teams[team_id]

    def plans(self, team_id: int) -> list:
        if team_id not in self._plans:
            self._plans[team_id] = [
                plan
                for plan in oncall_selectors.rotation_plans(
                    Rotation.objects.filter(is_active=True, team_id=team_id).order_by("name"),
                    start=self.now - timedelta(days=1),
                    end=self.now + timedelta(days=1),
                )
            ]
        return self._plans[team_id]

    def endpoints(self) -> list[WebhookEndpoint]:
        if self._endpoints is None:
            self._endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
        return self._endpoints

    def resolve(self, target: EscalationTarget, at: datetime, paged_team_id: int | None) -> Recipient:
        kind = target.kind
        if kind == EscalationTarget.Kind.PERSON:
            return Recipient(str(target.person), person=target.person)
        if kind == EscalationTarget.Kind.HOTLINE:
            return Recipient(f"{target.hotline} (hotline)", person=target.hotline.person, hotline=target.hotline)
        team = self.team(target.team_id or paged_team_id)
        if team is None:
            return Recipient(f"{target.describe()}: no team owns the affected services")
        if kind == EscalationTarget.Kind.TEAM_LEAD:
            if team.team_lead is None:
                return Recipient(f"Team lead of {team}: none set")
            return Recipient(f"{team.team_lead} (team lead of {team})", person=team.team_lead)
        person = oncall_selectors.team_on_call(self.plans(team.pk), target.slot, at)
        label = f"{target.get_slot_display()} on-call of {team}"
        if person is None:
            return Recipient(f"{label}: nobody on call")
        return Recipient(f"{person} ({label})", person=person)


def _person_address(person: Person, channel: str) -> str:
    if channel == Channel.EMAIL:
        return person.email
    if channel in (Channel.SMS, Channel.VOICE):
        return person.phone
    if channel == Channel.CHAT:
        return person.chat_handle
    return ""


def person_notifications(
    person: Person, *, rules: list[NotificationRule], at: datetime, key_prefix: str, label: str = "", **fields
) -> list[Notification]:
    """Outbox rows for one person: one per notification rule, due `delay_minutes` after `at`. Every row fires at
    its time unless the page is acknowledged first; a failed or unanswered one brings the next forward."""
    rows = []
    options = [
        (rule.pk, rule.contact_method, rule.contact_method.channel, rule.delay)
        for rule in rules
        if rule.contact_method.is_active
    ]
    if not options:
        # No rules recorded (a person created outside the admin): email and SMS at once, a call after 3 minutes,
        # from whatever the directory entry holds, is better than silence.
        options = [(None, None, channel, delay) for channel, delay in DEFAULT_RULES]
    for rule_id, method, channel, delay in options:
        address = (method.address if method is not None else "") or _person_address(person, channel)
        if method is None and not address:
            continue
        rows.append(
            Notification(
                idempotency_key=f"{key_prefix}:p{person.pk}:"
                + (f"r{rule_id}" if rule_id else f"d{channel}{int(delay.total_seconds())}"),
                person=person,
                rule_id=rule_id,
                recipient=(label or str(person))[:200],
                channel=channel,
                address=address or "",
                method_position=int(delay.total_seconds() // 60),
                status=Notification.Status.PENDING,
                scheduled_for=at + delay,
                ack_nonce=Notification.new_nonce(),
                ack_code=Notification.new_ack_code(),
                **fields,
            )
        )
    return rows


def _hotline_notifications(hotline: Hotline, *, at: datetime, key_prefix: str, **fields) -> list[Notification]:
    rows = []
    for channel, address in ((Channel.VOICE, hotline.number), (Channel.EMAIL, hotline.email)):
        if address:
            rows.append(
                Notification(
                    idempotency_key=f"{key_prefix}:h{hotline.pk}:{channel}",
                    hotline=hotline,
                    person=hotline.person,
                    recipient=f"{hotline} (hotline)",
                    channel=channel,
                    address=address,
                    scheduled_for=at,
                    ack_nonce=Notification.new_nonce(),
                    ack_code=Notification.new_ack_code(),
                    **fields,
                )
            )
    return rows


# --- starting and stopping -----------------------------------------------------------------------------------


def paged_team_and_policy(incident: Incident):
    """The owning team of the incident's first affected service that has one (by name), and its escalation
    policy, else the default policy."""
    team = None
    for service in incident.services.select_related("owning_team").order_by("name"):
        if service.owning_team_id:
            team = service.owning_team
            break
    return team, oncall_selectors.escalation_policy_for(team)


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


def _wake_senders_on_commit() -> None:
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


def _update_page_timers(pages: list[Page]) -> None:
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
            _update_page_timers(changed_pages)
        if self.entries:
            # Every writer of escalations holds the pages' incident rows (the tick claims them with the pages).
            timeline.record_all(self.entries, incidents_locked=True)
            for entry in self.entries:
                audit.created(entry, incident_id=entry.incident_id)
        if self.notifications:
            Notification.objects.bulk_create(self.notifications, ignore_conflicts=True)
            _wake_senders_on_commit()
        audit.flush()
        self.pages, self.entries, self.notifications = {}, [], []


def start_paging(*, incident: Incident, by, reason: str = "declared") -> Page | None:
    """Start paging for the incident's current severity through the owning team's escalation policy (the default
    policy when no team owns its services). An open page of the incident is stopped first (superseded).
    Call inside the transaction that holds the incident row (declare_incident, change_severity)."""
    now = timezone.now()
    superseded = stop_paging(
        incident=incident, by=by, reason=f"superseded: paging restarted ({reason})", quiet=True, only_primary=True
    )
    team, policy = paged_team_and_policy(incident)
    if policy is None:
        timeline.record(timeline.paging_unavailable(incident))
        return None
    page = Page.objects.create(
        incident=incident,
        severity=incident.severity,
        policy=policy,
        team=team,
        started_at=now,
        pass_started_at=now,
        escalate_at=now,
    )
    timeline.record(
        timeline.paging_started(
            incident, page=page, team=team, policy=policy, superseded=bool(superseded), reason=reason
        )
    )
    writes = EscalationWrites()
    advance_page(page, EscalationContext(now), writes)
    writes.flush()
    return page


def _close_pages(
    incident: Incident, *, state: str, by=None, person=None, via="", reason="", only_primary=False
) -> list[Page]:
    pages = Page.objects.select_for_update().filter(incident=incident, state__in=Page.OPEN_STATES)
    if only_primary:
        pages = pages.filter(is_added=False)
    pages = list(pages)
    if not pages:
        return []
    now = timezone.now()
    for page in pages:
        page.state = state
        page.escalate_at = None
        if state == Page.State.ACKNOWLEDGED:
            page.acknowledged_at = now
            page.acknowledged_by = by
            page.acknowledged_by_person = person
            page.acknowledged_via = via
        else:
            page.stopped_at = now
            page.stop_reason = reason[:200]
        page.save()
    # Rows a sender holds right now are skipped here: that sender re-reads the page after this commits and
    # cancels its own row (or finished sending before this transaction could take the incident lock).
    waiting = list(
        Notification.objects.select_for_update(skip_locked=True)
        .filter(
            page__in=pages,
            status__in=[Notification.Status.PENDING, Notification.Status.STANDBY],
        )
        .values_list("pk", flat=True)
    )
    # Rows sent by a sender whose worker died before its batch committed are recorded as sent, not cancelled.
    sent = set(sentmarks.restore(waiting))
    waiting = [pk for pk in waiting if pk not in sent]
    if waiting:
        Notification.objects.filter(pk__in=waiting).update(status=Notification.Status.CANCELLED, scheduled_for=None)
    return pages


def acknowledge_pages(*, incident: Incident, by, person: Person | None = None, via: str = "portal") -> list[Page]:
    """Stop escalation: every open page of the incident becomes acknowledged and its waiting notifications are
    cancelled. Call with the incident row locked (incidents.services.acknowledge_incident does)."""
    if person is None and by is not None:
        person = Person.objects.filter(user=by).first()
    pages = _close_pages(incident, state=Page.State.ACKNOWLEDGED, by=by, person=person, via=via)
    if incident.acknowledged_at is None and incident.status != "closed":
        # The incident's first acknowledgement follows in the same transaction (acknowledge_incident) and is the
        # one timeline entry; the page keeps who, when and through which channel.
        return pages
    for page in pages:
        who = person or by
        name = str(who) if who is not None else "the portal"
        if by is not None and person is None:
            name = by.get_full_name() or by.get_username()
        timeline.record(timeline.page_acknowledged(incident, page=page, name=name, via=via, by=by, person=person))
    return pages


def stop_paging(*, incident: Incident, by, reason: str, quiet: bool = False, only_primary: bool = False) -> list[Page]:
    """Stop every open page of the incident (resolved, closed), or only its own paging run (superseded by a new
    page: added responders go on being paged)."""
    pages = _close_pages(incident, state=Page.State.STOPPED, reason=reason, only_primary=only_primary)
    if pages and not quiet:
        timeline.record(timeline.paging_stopped(incident, reason=reason, pages=pages, by=by))
    return pages


# --- escalation ----------------------------------------------------------------------------------------------


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
            made = _hotline_notifications(recipient.hotline, at=at, key_prefix=key_prefix, **common)
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
            channels = ", ".join(_when(row, at) for row in made if row.status == Notification.Status.PENDING)
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


def _when(row: Notification, at: datetime) -> str:
    minutes = int((row.scheduled_for - at).total_seconds() // 60) if row.scheduled_for else 0
    return row.get_channel_display() + (f" after {minutes} min" if minutes > 0 else "")


def _fire_level(page: Page, levels, index: int, at: datetime, context, writes) -> list[Notification]:
    level = levels[index]
    rows, reached, unreachable = _level_notifications(page, level, index, at, context)
    page.escalation_level = index
    page.last_escalated_at = context.now
    if page.acknowledge_due_at is None:
        page.acknowledge_due_at = at + settings.ACKNOWLEDGE_TARGET
    writes.entry(
        timeline.level_paged(
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
            _hotline_notifications(
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
        timeline.hotlines_alerted(page, hotlines=[str(h) for h in hotlines], passes=settings.PAGING_REPEAT_POLICY_TIMES)
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
            writes.entry(timeline.added_page_unanswered(page, target=page.target_label))
            break
        if not levels or page.repeat + 1 >= settings.PAGING_REPEAT_POLICY_TIMES:
            rows.extend(_alert_hotlines(page, context, writes))
            break
        page.repeat += 1
        page.pass_started_at = page.escalate_at
        page.escalation_level = None
    writes.notifications.extend(rows)
    return rows


def _claim(queryset, limit: int):
    # Page and incident rows together, neither waited for: a busy incident is picked up by the next tick.
    return list(
        queryset.select_related("incident", "severity")
        .select_for_update(of=("self", "incident"), skip_locked=True, no_key=True)
        .order_by("escalate_at", "pk")[:limit]
    )


def escalate_due_pages(*, limit: int = 200, now: datetime | None = None) -> int:
    """One batch of the escalation tick, in one transaction: claim due pages (FOR UPDATE SKIP LOCKED), advance
    each, write their outbox rows. Returns the number of pages advanced; several ticks at once never double work."""
    now = now or timezone.now()
    with transaction.atomic():
        pages = _claim(Page.objects.due(now), limit)
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
        writes.entry(timeline.escalation_requested(page, name=who, via=via))
        advance_page(page, context, writes)
        writes.flush()
    return page


def send_test_page(*, contact_method: ContactMethod, by) -> channels.Handed:
    """ "Send me a test page": one message through the contact method's real channel and backend, now, outside
    the outbox (no incident, nothing to acknowledge). Raises DomainError with the channel's refusal."""
    person = contact_method.person
    if not oncall_services.can_edit_rules(by, person):
        raise DomainError("Only the person or a manager can send a test page.")
    address = contact_method.resolved_address
    text = (
        f"Test page for {person} from the incident portal by {contact_method.get_channel_display()}. "
        f"Nothing is wrong; no reply is needed. {settings.SITE_URL}"
    )
    message = channels.OutgoingMessage(
        channel=contact_method.channel,
        address=address,
        recipient=str(person),
        subject="Test page from the incident portal",
        text=text,
        data={"event": "test", "spoken": f"Test page for {person}. Nothing is wrong", "test": True},
    )
    try:
        return channels.send(message) or channels.Handed()
    except channels.DeliveryError as error:
        raise DomainError(f"The test page was not sent: {error}", field="contact_method") from error


def add_responders(
    *, incident: Incident, by, team: Team | None = None, person: Person | None = None, message: str = ""
):
    """Page another team (through its escalation policy: level 1 now, later levels until someone acknowledges) or
    one person (by their notification rules), with a message. One open added page per team or person; the
    incident's acknowledgement (from anyone, any channel) stops these pages too. Returns the new page."""
    if not access.can_respond(by):
        raise PermissionDenied("You need the responder role to add responders.")
    if (team is None) == (person is None):
        raise DomainError("Choose a team or a person to page.", field="team")
    message = (message or "").strip()
    if len(message) > 1000:
        raise DomainError("Keep the message under 1,000 characters.", field="message")
    with transaction.atomic():
        incident = Incident.objects.select_for_update().select_related("severity").get(pk=incident.pk)
        if incident.status in ("resolved", "closed"):
            raise DomainError(f"{incident.reference} is {incident.get_status_display().lower()}.", field="incident")
        open_added = Page.objects.filter(incident=incident, is_added=True, state__in=Page.OPEN_STATES)
        now = timezone.now()
        context = EscalationContext(now)
        writes = EscalationWrites()
        if team is not None:
            if open_added.filter(team=team, target_person__isnull=True).exists():
                raise DomainError(f"{team} is being paged for this incident already.", field="team")
            policy = oncall_selectors.escalation_policy_for(team)
            if policy is None:
                raise DomainError(f"{team} has no escalation policy and there is no default policy.", field="team")
            page = Page.objects.create(
                incident=incident,
                severity=incident.severity,
                policy=policy,
                team=team,
                is_added=True,
                message=message,
                requested_by=by,
                started_at=now,
                pass_started_at=now,
                escalate_at=now,
            )
            writes.entry(
                timeline.responders_paged(
                    incident, page=page, target=str(team), how=str(policy), message=message, by=by
                )
            )
            advance_page(page, context, writes)
        else:
            if open_added.filter(target_person=person).exists():
                raise DomainError(f"{person} is being paged for this incident already.", field="person")
            page = Page.objects.create(
                incident=incident,
                severity=incident.severity,
                target_person=person,
                is_added=True,
                message=message,
                requested_by=by,
                started_at=now,
                pass_started_at=now,
                escalate_at=None,
                acknowledge_due_at=now + settings.ACKNOWLEDGE_TARGET,
            )
            rows = person_notifications(
                person,
                rules=context.rules(person),
                at=now,
                key_prefix=f"page:{page.pk}:added",
                incident_id=incident.pk,
                page=page,
                purpose=Notification.Purpose.PAGE,
                message=message,
            )
            channels_ = ", ".join(_when(row, now) for row in rows) or "no way to reach them"
            writes.entry(
                timeline.responders_paged(
                    incident, page=page, target=str(person), how=channels_, message=message, by=by
                )
            )
            writes.notifications.extend(rows)
        writes.flush()
    return page

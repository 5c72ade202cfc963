"""The guide's reminders, on the same timer mechanism as escalations (deadline columns, claimed FOR UPDATE SKIP
LOCKED by the tick, each fired once and recorded):

- acknowledge target (settings.ACKNOWLEDGE_TARGET, the guide's 5 min) missed -> a note on the timeline
  (Page.acknowledge_due_at / acknowledge_target_missed_at);
- internal update cadence missed (Incident.next_update_due_at) -> remind the Incident Commander and the
  Communications Lead (a Reminder row per deadline);
- Resolved for 24 h -> remind the Incident Commander to complete the closure checklist and close.
The post-mortem scheduling reminder (48 h) belongs to postmortems' own tick.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from incidentportal.db import work_due_rows
from incidents import timeline
from incidents.models import Incident, Role, RoleAssignment, Status
from incidents.profiles.services import zones_of
from incidents.profiles.zones import format_moment, zone
from incidents.timeline import paging as paging_timeline
from oncall.models import NotificationRule, Person

from .models import Channel, Notification, Page, Reminder
from .services.engine import wake_senders_on_commit
from .services.recipients import person_notifications

CLOSE_AFTER_RESOLVED = timedelta(hours=24)


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def note_missed_acknowledge_targets(*, now: datetime | None = None, limit: int = 200) -> int:
    now = now or timezone.now()
    target = _minutes(settings.ACKNOWLEDGE_TARGET)

    def note(page: Page) -> None:
        page.acknowledge_target_missed_at = now
        page.save(update_fields=["acknowledge_target_missed_at"])
        timeline.record(paging_timeline.acknowledge_target_missed(page.incident, page=page, target_minutes=target))

    due = Page.objects.filter(
        state__in=Page.OPEN_STATES, acknowledge_due_at__lte=now, acknowledge_target_missed_at__isnull=True
    ).select_related("incident")
    return work_due_rows(due, note, order_by=("acknowledge_due_at", "pk"), limit=limit, of=("self", "incident"))


def _recipients(incident: Incident, roles) -> list:
    """Current holders of `roles` as (role label, user, person or None), one entry per user."""
    assignments = (
        RoleAssignment.objects.filter(incident=incident, role__in=roles, relieved_at__isnull=True)
        .select_related("holder")
        .order_by("role")
    )
    seen, found = set(), []
    for assignment in assignments:
        if assignment.holder_id in seen:
            continue
        seen.add(assignment.holder_id)
        found.append((Role(assignment.role).label, assignment.holder))
    people = {p.user_id: p for p in Person.objects.filter(user_id__in=seen, is_active=True)}
    # A reminder is not a page: it goes out once, by the person's immediate rules (those with no delay).
    methods: dict[int, list] = {}
    rules = (
        NotificationRule.objects.filter(person__in=people.values(), contact_method__is_active=True, delay_minutes=0)
        .select_related("contact_method")
        .order_by("contact_method__position", "pk")
    )
    for rule in rules:
        methods.setdefault(rule.person_id, []).append(rule)
    return [(label, user, people.get(user.pk), methods) for label, user in found]


def _remind(
    reminder: Reminder, incident: Incident, roles, *, subject: str, message: Callable[[tzinfo], str], now
) -> list[str]:
    """`message(zone)` is written for each recipient in their time zone: their profile's, else their on-call
    person's, else UTC (incidents.profiles: one format, the zone named)."""
    rows, names = [], []
    recipients = _recipients(incident, roles)
    zones = zones_of([user for _, user, _, _ in recipients])
    for label, user, person, methods in recipients:
        reader_zone = zones.get(user.pk) or (zone(person.timezone) if person is not None else None) or UTC
        common = {
            "incident": incident,
            "reminder": reminder,
            "purpose": Notification.Purpose.REMINDER,
            "subject": subject,
            "message": message(reader_zone),
        }
        key = f"reminder:{reminder.pk}:u{user.pk}"
        name = user.get_full_name() or user.get_username()
        if person is not None:
            made = person_notifications(person, rules=methods.get(person.pk, []), at=now, key_prefix=key, **common)
        elif user.email:
            made = [
                Notification(
                    idempotency_key=f"{key}:{Channel.EMAIL}:0",
                    recipient=name,
                    channel=Channel.EMAIL,
                    address=user.email,
                    scheduled_for=now,
                    **common,
                )
            ]
        else:
            made = []
        if made:
            rows.extend(made)
            names.append(f"{label} {name}")
    if rows:
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
        wake_senders_on_commit()
    return names


def remind_update_cadence(*, now: datetime | None = None, limit: int = 100) -> int:
    """Active incidents whose internal update is overdue and not yet reminded for that deadline."""
    now = now or timezone.now()
    reminded = Reminder.objects.filter(
        incident=OuterRef("pk"), kind=Reminder.Kind.UPDATE_CADENCE, due_at=OuterRef("next_update_due_at")
    )

    def remind(incident: Incident) -> None:
        reminder = Reminder.objects.create(
            incident=incident, kind=Reminder.Kind.UPDATE_CADENCE, due_at=incident.next_update_due_at, fired_at=now
        )
        cadence = incident.severity.update_cadence
        every = f" ({incident.severity.level}: every {_minutes(cadence)} min)" if cadence else ""
        names = _remind(
            reminder,
            incident,
            [Role.INCIDENT_COMMANDER, Role.COMMUNICATIONS_LEAD],
            subject=f"[{incident.severity.level}] {incident.reference}: internal update overdue",
            message=lambda reader_zone, incident=incident, every=every: (
                f"The internal update was due at {format_moment(incident.next_update_due_at, reader_zone)}"
                f"{every}. Post one from the incident page: {settings.SITE_URL}{incident.get_absolute_url()}"
            ),
            now=now,
        )
        timeline.record(
            paging_timeline.update_overdue(
                incident,
                due_at=incident.next_update_due_at,
                cadence_minutes=_minutes(cadence) if cadence else None,
                reminded=names,
            )
        )

    due = (
        Incident.objects.active()
        .filter(next_update_due_at__lte=now)
        .exclude(Exists(reminded))
        .select_related("severity")
    )
    return work_due_rows(due, remind, order_by=("next_update_due_at", "pk"), limit=limit)


def remind_to_close(*, now: datetime | None = None, limit: int = 100) -> int:
    """Incidents Resolved for 24 h: remind the Incident Commander to complete the closure checklist and close."""
    now = now or timezone.now()
    reminded = Reminder.objects.filter(
        incident=OuterRef("pk"),
        kind=Reminder.Kind.CLOSE_RESOLVED,
        due_at=OuterRef("resolved_at") + CLOSE_AFTER_RESOLVED,
    )

    def remind(incident: Incident) -> None:
        reminder = Reminder.objects.create(
            incident=incident,
            kind=Reminder.Kind.CLOSE_RESOLVED,
            due_at=incident.resolved_at + CLOSE_AFTER_RESOLVED,
            fired_at=now,
        )
        open_items = incident.checklist_items.filter(phase="closure", checked_at__isnull=True).count()
        names = _remind(
            reminder,
            incident,
            [Role.INCIDENT_COMMANDER],
            subject=f"{incident.reference}: resolved for 24 h - time to close",
            message=lambda reader_zone, incident=incident, open_items=open_items: (
                f"{incident.reference} has been Resolved for 24 hours (since "
                f"{format_moment(incident.resolved_at, reader_zone)}). Complete the closure checklist "
                f"({open_items} item{'s' if open_items != 1 else ''} open) and close it: "
                f"{settings.SITE_URL}{incident.get_absolute_url()}"
            ),
            now=now,
        )
        timeline.record(paging_timeline.close_reminder(incident, open_items=open_items, reminded=names))

    due = (
        Incident.objects.filter(status=Status.RESOLVED, resolved_at__lte=now - CLOSE_AFTER_RESOLVED)
        .exclude(Exists(reminded))
        .select_related("severity")
    )
    return work_due_rows(due, remind, order_by=("resolved_at", "pk"), limit=limit)


def run_reminder_tick(*, now: datetime | None = None) -> dict[str, int]:
    return {
        "acknowledge_target": note_missed_acknowledge_targets(now=now),
        "update_cadence": remind_update_cadence(now=now),
        "close_resolved": remind_to_close(now=now),
    }

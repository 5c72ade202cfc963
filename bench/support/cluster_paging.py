"""Pages whose escalations fall due while bench/cluster.py breaks things, and what their deliveries show.

Setup as bench/escalation.py: P1 incidents with a page each, level 0 already fired; level 1 (the team's lead, one
notification rule: email at once) falls due at a chosen time. Lateness = the time the recording backend got the
notification minus the page's `escalate_at`; duplicates are idempotency keys delivered more than once. Django must
be set up (bench/cluster.py does it once the test bed is up)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from incidents.models import Incident, ReferenceCounter, SeverityPolicy
from oncall.models import ContactMethod, EscalationPolicy, NotificationRule, Person, Team
from oncall.paging.models import Notification, Page
from tests.reliability.backends import read_deliveries

from .traffic import percentile


def make_pages(count: int, prefix: str) -> list[int]:
    """`count` paging incidents whose escalation is a day away (schedule() brings it forward). Returns page ids."""
    p1 = SeverityPolicy.objects.get(level="P1")
    policy = EscalationPolicy.objects.get(is_default=True)
    far = timezone.now() + timedelta(days=1)
    with transaction.atomic():
        counter, _ = ReferenceCounter.objects.select_for_update().get_or_create(name="incident", defaults={"value": 0})
        first = counter.value + 1
        counter.value += count
        counter.save(update_fields=["value"])
        leads = Person.objects.bulk_create(
            Person(name=f"{prefix} lead {i}", email=f"{prefix}-lead{i}@cluster.example.com") for i in range(count)
        )
        methods = ContactMethod.objects.bulk_create(
            ContactMethod(person=person, position=0, channel="email") for person in leads
        )
        NotificationRule.objects.bulk_create(
            NotificationRule(person_id=method.person_id, contact_method=method, delay_minutes=0) for method in methods
        )
        teams = Team.objects.bulk_create(
            Team(name=f"{prefix} team {i}", slug=f"{prefix}-team-{i}", team_lead=lead) for i, lead in enumerate(leads)
        )
        now = timezone.now()
        incidents = Incident.objects.bulk_create(
            Incident(number=first + i, title=f"{prefix} incident {i}", severity=p1, detected_at=now, declared_at=now)
            for i in range(count)
        )
        pages = Page.objects.bulk_create(
            Page(
                incident=incident,
                severity=p1,
                policy=policy,
                team=team,
                escalation_level=0,
                started_at=now,
                pass_started_at=far - timedelta(minutes=30),
                escalate_at=far,
                acknowledge_due_at=far,
            )
            for incident, team in zip(incidents, teams, strict=True)
        )
    return [page.pk for page in pages]


def schedule(page_ids: list[int], first_due: datetime, spread: float) -> dict[int, datetime]:
    """Spread the pages' level-1 escalations evenly over `spread` seconds from `first_due`; returns id -> due."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH ranked AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM paging_page WHERE id = ANY(%s)) "
            "UPDATE paging_page p SET escalate_at = %s + make_interval(secs => ranked.k * %s / %s), "
            "pass_started_at = %s + make_interval(secs => ranked.k * %s / %s) - interval '30 minutes', "
            "acknowledge_due_at = %s + interval '1 day' FROM ranked WHERE p.id = ranked.id",
            [page_ids, first_due, spread, len(page_ids), first_due, spread, len(page_ids), first_due],
        )
    return dict(Page.objects.filter(pk__in=page_ids).values_list("pk", "escalate_at"))


def escalation_deliveries(path, due_at: dict[int, datetime]) -> tuple[dict[int, float], Counter]:
    """(page id -> first delivery time of its level-1 notification, idempotency key -> deliveries)."""
    first: dict[int, float] = {}
    counts: Counter = Counter()
    for delivered_at, _pid, key in read_deliveries(path):
        parts = key.split(":")
        if len(parts) < 3 or parts[0] != "page" or parts[2] != "l1":
            continue
        page_id = int(parts[1])
        if page_id in due_at:
            counts[key] += 1
            first.setdefault(page_id, delivered_at)
    return first, counts


@dataclass
class Escalations:
    expected: int
    delivered: int
    duplicated: int
    doubled_rows: int  # pages with more than one level-1 notification row (an escalation run twice)
    lateness: dict[int, float]  # page id -> seconds

    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    def p(self, q: float, pages=None) -> float:
        values = [self.lateness[pk] for pk in (pages if pages is not None else self.lateness) if pk in self.lateness]
        return percentile(values, q)


def measure(path, due_at: dict[int, datetime]) -> Escalations:
    first, counts = escalation_deliveries(path, due_at)
    doubled = (
        Notification.objects.filter(page_id__in=list(due_at), level=1)
        .values("page_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return Escalations(
        expected=len(due_at),
        delivered=len(first),
        duplicated=sum(n - 1 for n in counts.values()),
        doubled_rows=doubled,
        lateness={pk: at - due_at[pk].timestamp() for pk, at in first.items()},
    )


def due_between(due_at: dict[int, datetime], start: float, end: float) -> list[int]:
    return [pk for pk, due in due_at.items() if start <= due.timestamp() < end]


def incident_ids(page_ids: list[int]) -> list[int]:
    return list(Page.objects.filter(pk__in=page_ids).values_list("incident_id", flat=True))


def repeated_in_flight(path, killed_at: float) -> int:
    """Repeats of sends that were in flight when a host lost power: the first delivery was made by a process that
    made none after `killed_at` (it died), within two seconds before it, and another process made it again. The
    provider had taken the message but the sender died before it committed "sent": the row is claimed and sent
    again. Nothing can close that window on the sender's side; the repeat carries the same idempotency key, for
    providers that deduplicate by it."""
    rows = read_deliveries(path)
    alive_after = {pid for at, pid, _key in rows if at > killed_at}
    first: dict[str, tuple[float, int]] = {}
    repeats = 0
    for at, pid, key in rows:
        if key not in first:
            first[key] = (at, pid)
        elif pid != first[key][1]:
            at0, pid0 = first[key]
            if pid0 not in alive_after and killed_at - 2.0 <= at0 <= killed_at:
                repeats += 1
    return repeats

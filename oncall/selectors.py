"""Reads for on-call pages, feeds, the escalation planner and the on-call API. Each costs a fixed number of queries,
whatever the number of rotations, members, overrides or shifts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from .models import (
    EscalationLevel,
    EscalationPolicy,
    EscalationTarget,
    Override,
    Person,
    Rotation,
    RotationMember,
    Slot,
    Team,
)
from .resolver import RotationPlan, Shift

# Overrides loaded around "now" when the caller gives no window: enough for the pages' next-handoff lookups.
DEFAULT_WINDOW = timedelta(days=35)


def rotation_plans(
    rotations: QuerySet | None = None, *, start: datetime | None = None, end: datetime | None = None
) -> list[RotationPlan]:
    """RotationPlans for `rotations` (default: every active rotation) with the overrides overlapping [start, end).

    Three queries: rotations (with team), members (with person), overrides (with person).
    """
    start = start or timezone.now() - timedelta(days=1)
    end = end or start + DEFAULT_WINDOW
    queryset = rotations if rotations is not None else Rotation.objects.filter(is_active=True)
    rotation_list = list(queryset.select_related("team"))
    ids = [rotation.pk for rotation in rotation_list]
    members: dict[int, list] = defaultdict(list)
    overrides: dict[int, list] = defaultdict(list)
    if ids:
        for member in RotationMember.objects.filter(rotation_id__in=ids).select_related("person"):
            members[member.rotation_id].append(member)
        for override in Override.objects.filter(rotation_id__in=ids).overlapping(start, end).select_related("person"):
            overrides[override.rotation_id].append(override)
    return [RotationPlan(r, members[r.pk], overrides[r.pk]) for r in rotation_list]


def plans_by_team(plans: list[RotationPlan]) -> dict[int, list[RotationPlan]]:
    grouped: dict[int, list[RotationPlan]] = defaultdict(list)
    for plan in plans:
        grouped[plan.rotation.team_id].append(plan)
    return grouped


def team_on_call(plans: list[RotationPlan], slot: str, at: datetime):
    """The first rotation of a team (by name) that has someone in `slot` at `at` decides; None if all are gaps."""
    for plan in plans:
        person = plan.who_is_on_call(slot, at)
        if person is not None:
            return person
    return None


@dataclass(frozen=True)
class SlotNow:
    slot: str
    label: str
    current: Shift
    following: Shift | None

    @property
    def person(self):
        return self.current.person


@dataclass(frozen=True)
class RotationNow:
    rotation: Rotation
    slots: list[SlotNow]
    next_handoff: datetime


@dataclass(frozen=True)
class TeamNow:
    team: Team
    rotations: list[RotationNow]


def on_call_now(*, at: datetime | None = None) -> list[TeamNow]:
    """Every team with, per active rotation, who holds each slot now, until when, and who follows.

    Four queries: teams (with lead) and the three of rotation_plans.
    """
    at = at or timezone.now()
    teams = list(Team.objects.select_related("team_lead").order_by("name"))
    by_team = plans_by_team(rotation_plans(start=at - timedelta(days=1), end=at + DEFAULT_WINDOW))
    result = []
    for team in teams:
        rotations = []
        for plan in by_team.get(team.pk, []):
            horizon = plan.next_handoff(at) + timedelta(days=plan.length_days)
            slots = []
            for slot in Slot.values:
                segments = plan.shifts_between(at, horizon, [slot])
                slots.append(SlotNow(slot, Slot(slot).label, segments[0], segments[1] if len(segments) > 1 else None))
            rotations.append(RotationNow(plan.rotation, slots, plan.next_handoff(at)))
        result.append(TeamNow(team, rotations))
    return result


def header_on_call(*, at: datetime | None = None) -> list[tuple[Team, object | None]]:
    """Primary on-call per team for the site header, in two queries (plans without a separate team query).

    Returns (team, person or None) for every team that has an active rotation.
    """
    at = at or timezone.now()
    # Only overrides covering `at` matter for a point-in-time answer.
    plans = rotation_plans(start=at, end=at + timedelta(microseconds=1))
    seen: dict[int, tuple[Team, object | None]] = {}
    for plan in plans:
        team = plan.rotation.team
        current = seen.get(team.pk)
        if current is None or current[1] is None:
            seen[team.pk] = (team, plan.who_is_on_call(Slot.PRIMARY, at))
    return sorted(seen.values(), key=lambda pair: pair[0].name)


def rotation_calendar(rotation: Rotation, *, start: datetime, weeks: int = 4) -> tuple[RotationPlan, list[Shift]]:
    """The shifts of one rotation for the coming weeks, overrides included and marked (three queries)."""
    end = start + timedelta(weeks=weeks)
    plan = rotation_plans(Rotation.objects.filter(pk=rotation.pk), start=start, end=end)[0]
    return plan, plan.shifts_between(start, end)


def person_shifts(person: Person, *, start: datetime, end: datetime) -> list[Shift]:
    """Every shift `person` holds in [start, end) across all active rotations, overrides applied."""
    rotations = Rotation.objects.filter(is_active=True).filter(
        pk__in=RotationMember.objects.filter(person=person).values("rotation")
    ) | Rotation.objects.filter(
        is_active=True, overrides__person=person, overrides__start__lt=end, overrides__end__gt=start
    )
    plans = rotation_plans(rotations.distinct(), start=start, end=end)
    shifts = [
        s
        for plan in plans
        for s in plan.shifts_between(start, end)
        if s.person is not None and s.person.pk == person.pk
    ]
    shifts.sort(key=lambda s: s.start)
    return shifts


def escalation_policy_for(team: Team | None) -> EscalationPolicy | None:
    """The team's own policy, else the default policy (the guide's path)."""
    if team is not None:
        own = EscalationPolicy.objects.filter(team=team).order_by("pk").first()
        if own is not None:
            return own
    return EscalationPolicy.objects.filter(is_default=True).first()


def policy_with_levels(policy: EscalationPolicy) -> EscalationPolicy:
    """The policy with levels and targets prefetched, as plan_escalation wants it (three queries)."""
    targets = EscalationTarget.objects.select_related("team__team_lead", "person", "hotline__person")
    levels = EscalationLevel.objects.order_by("position", "pk").prefetch_related(Prefetch("targets", targets))
    return EscalationPolicy.objects.prefetch_related(Prefetch("levels", levels)).get(pk=policy.pk)

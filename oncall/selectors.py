"""Reads for on-call pages, feeds, the escalation planner and the on-call API. Each costs a fixed number of queries,
whatever the number of rotations, members, overrides or shifts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch, Q, QuerySet
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
    """Primary on-call per team for the site header, in two queries: primary members (with rotation, team and
    person) and the primary overrides covering `at`. Teams whose rotations have no primary members and no
    override now are left out of the compact header (the on-call page shows them as gaps).
    """
    at = at or timezone.now()
    members = (
        RotationMember.objects.filter(rotation__is_active=True, slot=Slot.PRIMARY)
        .select_related("rotation__team", "person")
        .order_by("rotation__team__name", "rotation__name", "position", "pk")
    )
    overrides = Override.objects.filter(
        rotation__is_active=True, slot=Slot.PRIMARY, start__lte=at, end__gt=at
    ).select_related("rotation__team", "person")
    rotations: dict[int, Rotation] = {}
    by_rotation: dict[int, list] = defaultdict(list)
    override_map: dict[int, list] = defaultdict(list)
    for member in members:
        rotations.setdefault(member.rotation_id, member.rotation)
        by_rotation[member.rotation_id].append(member)
    for override in overrides:
        rotations.setdefault(override.rotation_id, override.rotation)
        override_map[override.rotation_id].append(override)
    seen: dict[int, tuple[Team, object | None]] = {}
    for rotation in sorted(rotations.values(), key=lambda r: (r.team.name, r.name)):
        plan = RotationPlan(rotation, by_rotation[rotation.pk], override_map[rotation.pk])
        current = seen.get(rotation.team_id)
        if current is None or current[1] is None:
            seen[rotation.team_id] = (rotation.team, plan.who_is_on_call(Slot.PRIMARY, at))
    return list(seen.values())


def rotation_calendar(rotation: Rotation, *, start: datetime, weeks: int = 4) -> tuple[RotationPlan, list[Shift]]:
    """The shifts of one rotation for the coming weeks, overrides included and marked (three queries). Whole
    shifts: the window widens to the handoffs around it, so a shift that began before `start` (a Monday 09:00
    handoff seen from Tuesday) shows its real start and end, not the window's edges."""
    end = start + timedelta(weeks=weeks)
    margin = timedelta(days=max(int(rotation.shift_length_days), 1))
    plan = rotation_plans(Rotation.objects.filter(pk=rotation.pk), start=start - margin, end=end + margin)[0]
    first = _aligned_start(plan, start)
    k = plan.shift_index(end)
    last = end if k < 0 or plan.handoff(k) == end else plan.handoff(k + 1)
    return plan, plan.shifts_between(first, last)


@dataclass(frozen=True)
class CalendarRow:
    """One base shift of a rotation (a row of the guide's Week table) and what each slot holds in it."""

    index: int | None
    start: datetime
    end: datetime
    cells: list[tuple[str, str, list[Shift]]]  # (slot, label, segments)
    unit: str = "Shift"

    @property
    def week_label(self) -> str:
        # Weekly rotations read like the guide's table: Week 1, Week 2, ...
        return "Not started" if self.index is None else f"{self.unit} {self.index + 1}"


def calendar_rows(plan: RotationPlan, shifts: list[Shift]) -> list[CalendarRow]:
    """Group shifts_between output into rows per base shift, with a cell per slot (pure)."""
    grouped: dict[int | None, dict[str, list[Shift]]] = {}
    order: list[int | None] = []
    for shift in sorted(shifts, key=lambda s: s.start):
        if shift.index not in grouped:
            grouped[shift.index] = {slot: [] for slot in Slot.values}
            order.append(shift.index)
        grouped[shift.index][shift.slot].append(shift)
    rows = []
    for index in order:
        cells = grouped[index]
        segments = [s for slot_shifts in cells.values() for s in slot_shifts]
        rows.append(
            CalendarRow(
                index=index,
                start=min(s.start for s in segments),
                end=max(s.end for s in segments),
                cells=[(slot, Slot(slot).label, cells[slot]) for slot in Slot.values],
                unit="Week" if plan.length_days == 7 else "Shift",
            )
        )
    return rows


def _aligned_start(plan: RotationPlan, start: datetime) -> datetime:
    # Feeds start at a handoff so the first event is a whole shift and keeps its UID from one refresh to the next.
    k = plan.shift_index(start)
    return plan.handoff(k) if k >= 0 else start


def rotation_feed_shifts(rotation: Rotation, *, start: datetime, end: datetime) -> list[Shift]:
    """A rotation's shifts for its ICS feed (three queries)."""
    lead_in = timedelta(days=rotation.shift_length_days + 1)  # the aligned start is at most one shift earlier
    plan = rotation_plans(Rotation.objects.filter(pk=rotation.pk), start=start - lead_in, end=end)[0]
    return plan.shifts_between(_aligned_start(plan, start), end)


def person_shifts(person: Person, *, start: datetime, end: datetime) -> list[Shift]:
    """Every shift `person` holds in [start, end) across all active rotations, overrides applied (three queries).

    Rotations count when the person is a member or covers an override there."""
    rotations = (
        Rotation.objects.filter(is_active=True)
        .filter(Q(members__person=person) | Q(overrides__person=person, overrides__end__gt=start))
        .distinct()
    )
    # Overrides from a month earlier: enough for the aligned first shift of any rotation up to 4 weeks long.
    plans = rotation_plans(rotations, start=start - timedelta(days=31), end=end)
    shifts = [
        shift
        for plan in plans
        for shift in plan.shifts_between(_aligned_start(plan, start), end)
        if shift.person is not None and shift.person.pk == person.pk
    ]
    shifts.sort(key=lambda s: (s.start, s.rotation.pk))
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

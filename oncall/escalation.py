"""The escalation schedule: who is paged at what time, from an escalation policy and the incident's severity.

Public API (stable names; the paging engine drives these):

- `who_is_on_call(rotation_or_team, slot, at=None)` -> Person | None
- `escalation_times(delays, severity, started_at)` -> list[datetime]   (pure: plain values in, times out)
- `plan_escalation(policy, severity, started_at, *, team=None, plans=None)` -> list[PlannedStep]
- `PlannedStep(level, position, at, targets)`, `PlannedTarget(kind, label, person, hotline, target)`

Per-severity behaviour, from the SeverityPolicy row (the guide's "Escalation" column):
- `escalation_delay == 0` (P0, "Immediate"): level 0 at the start; each following level fires as soon as the
  acknowledge target (settings.ACKNOWLEDGE_TARGET, the guide's 5 minutes) has passed without acknowledgement, or
  sooner if the policy spaces the levels closer than that.
- `escalation_delay > 0` (P1 30 min, P2 2 h): level 0 at the start; the first escalation (level 1) waits at least
  the severity's escalation delay; later levels keep the policy's spacing after it. With the guide's path
  (0/15/30/60 min) P1 pages at 0, 30, 45, 75 min and P2 at 0, 120, 135, 165 min.
- `escalation_delay is None` (P3, "N/A"): only level 0 is paged; there is no escalation.
- `pages_out_of_hours is False` (P3): paging that would start outside business hours (incidents.business_hours)
  starts at the next business-hours opening instead.
Targets are resolved at the time their level fires, so a handoff between levels is respected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from incidents.business_hours import is_business_hours, next_business_hours_start

from . import selectors
from .models import EscalationLevel, EscalationTarget, Hotline, Person, Rotation, Team
from .resolver import RotationPlan
from .selectors import team_on_call


def who_is_on_call(rotation_or_team: Rotation | Team, slot: str, at: datetime | None = None) -> Person | None:
    """The Person holding `slot` ("primary", "secondary", "incident_commander") at `at` (default: now).

    For a Team, its active rotations are asked in name order and the first one with someone in the slot answers.
    Overrides win over the rotation. Returns None for a gap. Costs three queries; for many questions build plans once
    with `oncall.selectors.rotation_plans` and call `RotationPlan.who_is_on_call`.
    """
    at = at or timezone.now()
    window = {"start": at, "end": at + timedelta(microseconds=1)}
    if isinstance(rotation_or_team, Rotation):
        plans = selectors.rotation_plans(Rotation.objects.filter(pk=rotation_or_team.pk), **window)
    else:
        plans = selectors.rotation_plans(
            Rotation.objects.filter(team=rotation_or_team, is_active=True).order_by("name"), **window
        )
    return selectors.team_on_call(plans, slot, at)


def escalation_times(delays: list[timedelta], severity, started_at: datetime) -> list[datetime]:
    """When each level fires, for levels with the given policy `delays` (level order, from the start of paging).

    Pure: depends only on its arguments, settings.ACKNOWLEDGE_TARGET and the business-hours settings.
    Returns fewer times than levels when the severity does not escalate (P3: level 0 only).
    """
    if not delays:
        return []
    start = started_at
    if not severity.pages_out_of_hours and not is_business_hours(start):
        start = next_business_hours_start(start)
    first = start + delays[0]
    if severity.escalation_delay is None:
        return [first]
    times = [first]
    if severity.escalation_delay <= timedelta(0):
        acknowledge_target = settings.ACKNOWLEDGE_TARGET
        for previous, delay in zip(delays, delays[1:], strict=False):
            times.append(times[-1] + min(max(delay - previous, timedelta(0)), acknowledge_target))
        return times
    if len(delays) > 1:
        shift = max(severity.escalation_delay - (delays[1] - delays[0]), timedelta(0))
        times.extend(start + delay + shift for delay in delays[1:])
    return times


@dataclass(frozen=True)
class PlannedTarget:
    """One recipient of a level. `person` is None for a hotline without a person (call `hotline.number`) and
    for an on-call slot nobody holds at that time (a gap: `label` says which)."""

    kind: str
    label: str
    person: Person | None
    hotline: Hotline | None
    target: EscalationTarget

    @property
    def phone(self) -> str:
        if self.hotline is not None:
            return self.hotline.number
        return self.person.phone if self.person is not None else ""

    @property
    def email(self) -> str:
        if self.person is not None:
            return self.person.email
        return self.hotline.email if self.hotline is not None else ""

    @property
    def is_reachable(self) -> bool:
        return self.person is not None or bool(self.phone)


@dataclass(frozen=True)
class PlannedStep:
    """Level `position` of the policy fires at `at` and pages `targets`."""

    level: EscalationLevel
    position: int
    at: datetime
    targets: tuple[PlannedTarget, ...]


def plan_escalation(
    policy,
    severity,
    started_at: datetime,
    *,
    team: Team | None = None,
    plans: dict[int, list[RotationPlan]] | None = None,
) -> list[PlannedStep]:
    """The planned escalation schedule: for each level that fires, when and whom.

    `team` is the paged team (owning the affected service); it fills targets that name no team of their own.
    `plans` maps team id -> RotationPlans covering the schedule; when omitted they are loaded here with a fixed
    number of queries (levels and targets come from the policy's prefetch when present).
    """
    levels = list(policy.levels.all())
    levels.sort(key=lambda level: (level.position, level.pk))
    times = escalation_times([level.delay for level in levels], severity, started_at)
    if plans is None and times:
        # Only the rotations of teams this policy can page.
        team_ids = {
            target.team_id or (team.pk if team else None)
            for level in levels
            for target in level.targets.all()
            if target.kind == EscalationTarget.Kind.ROTATION_SLOT
        }
        rotations = Rotation.objects.filter(is_active=True, team_id__in=team_ids - {None}).order_by("name")
        plans = selectors.plans_by_team(
            selectors.rotation_plans(rotations, start=times[0], end=times[-1] + timedelta(microseconds=1))
        )
    steps = []
    for level, at in zip(levels, times, strict=False):
        targets = tuple(_resolve(target, at, team, plans or {}) for target in level.targets.all())
        steps.append(PlannedStep(level=level, position=level.position, at=at, targets=targets))
    return steps


def _resolve(target: EscalationTarget, at: datetime, paged_team: Team | None, plans) -> PlannedTarget:
    kind = target.kind
    if kind == EscalationTarget.Kind.PERSON:
        return PlannedTarget(kind, str(target.person), target.person, None, target)
    if kind == EscalationTarget.Kind.HOTLINE:
        hotline = target.hotline
        return PlannedTarget(kind, str(hotline), hotline.person, hotline, target)
    team = target.team if target.team_id else paged_team
    if team is None:
        return PlannedTarget(kind, f"{target.describe()}: no team to page", None, None, target)
    if kind == EscalationTarget.Kind.TEAM_LEAD:
        lead = team.team_lead
        return PlannedTarget(kind, f"Team lead of {team}", lead, None, target)
    person = team_on_call(plans.get(team.pk, []), target.slot, at)
    label = f"{target.get_slot_display()} on-call of {team}"
    return PlannedTarget(kind, label if person else f"{label}: nobody on call", person, None, target)

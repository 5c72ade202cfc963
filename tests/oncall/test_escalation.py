"""The planned escalation schedule per severity (the guide's Escalation column and Escalation Path)."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from oncall.escalation import escalation_times, plan_escalation
from oncall.models import EscalationPolicy, EscalationTarget, Hotline, Slot
from oncall.selectors import policy_with_levels
from tests.factories import severity

from .factories import PersonFactory, guide_rotation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("business_hours")]

# A Wednesday, 14:00 UTC: inside business hours.
WEDNESDAY_AFTERNOON = datetime(2026, 1, 7, 14, 0, tzinfo=UTC)
# A Saturday, 03:00 UTC: outside business hours.
SATURDAY_NIGHT = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)


@pytest.fixture
def business_hours():
    with override_settings(
        BUSINESS_TIMEZONE="UTC",
        BUSINESS_DAY_START="09:00",
        BUSINESS_DAY_END="17:00",
        BUSINESS_DAYS=[0, 1, 2, 3, 4],
        ACKNOWLEDGE_TARGET=timedelta(minutes=5),
    ):
        yield


@pytest.fixture
def guide_policy():
    return policy_with_levels(EscalationPolicy.objects.get(is_default=True))


@pytest.fixture
def team_setup():
    rotation, people = guide_rotation(start_date=date(2026, 1, 5))
    lead = PersonFactory(name="Team Lead L")
    rotation.team.team_lead = lead
    rotation.team.save()
    return rotation.team, people, lead


def minutes_after(steps, start):
    return [int((step.at - start).total_seconds() // 60) for step in steps]


def test_seeded_policy_is_the_guides_escalation_path(guide_policy):
    levels = list(guide_policy.levels.all())
    assert [(level.name, level.delay) for level in levels] == [
        ("On-call engineer", timedelta(0)),
        ("Team lead", timedelta(minutes=15)),
        ("Engineering manager", timedelta(minutes=30)),
        ("CTO/VP Eng", timedelta(minutes=60)),
    ]
    kinds = [[target.kind for target in level.targets.all()] for level in levels]
    assert kinds == [["rotation_slot"], ["team_lead"], ["hotline"], ["hotline"]]
    assert Hotline.objects.get(name="Engineering Manager").phone == "+15550010"
    assert Hotline.objects.get(name="CTO").phone == "+15550011"


@pytest.mark.parametrize(
    ("level", "expected_minutes"),
    [
        ("P0", [0, 5, 10, 15]),  # immediate: only the 5-minute acknowledge target between levels
        ("P1", [0, 30, 45, 75]),  # first escalation after 30 min, then the policy's spacing
        ("P2", [0, 120, 135, 165]),  # first escalation after 2 h
        ("P3", [0]),  # no escalation
    ],
)
def test_escalation_schedule_per_severity(guide_policy, team_setup, level, expected_minutes):
    team, _people, _lead = team_setup
    with time_machine.travel(WEDNESDAY_AFTERNOON, tick=False):
        started = timezone.now()
        steps = plan_escalation(guide_policy, severity(level), started, team=team)
    assert minutes_after(steps, started) == expected_minutes


def test_p3_never_pages_out_of_hours_it_waits_for_the_next_business_day(guide_policy, team_setup):
    team, people, _ = team_setup
    with time_machine.travel(SATURDAY_NIGHT, tick=False):
        steps = plan_escalation(guide_policy, severity("P3"), timezone.now(), team=team)
    assert [step.at for step in steps] == [datetime(2026, 1, 12, 9, 0, tzinfo=UTC)]  # Monday opening
    # Monday 09:00 is the handoff: Week 2's primary (Engineer B) is paged, not Saturday's.
    assert steps[0].targets[0].person == people["B"]


def test_p0_pages_out_of_hours_immediately(guide_policy, team_setup):
    team, *_ = team_setup
    with time_machine.travel(SATURDAY_NIGHT, tick=False):
        steps = plan_escalation(guide_policy, severity("P0"), timezone.now(), team=team)
    assert steps[0].at == SATURDAY_NIGHT


def test_targets_are_the_on_call_engineer_team_lead_and_hotlines(guide_policy, team_setup):
    team, people, lead = team_setup
    steps = plan_escalation(guide_policy, severity("P1"), WEDNESDAY_AFTERNOON, team=team)
    first, second, third, fourth = (step.targets for step in steps)
    assert first[0].person == people["A"] and first[0].label == f"Primary on-call of {team}"
    assert second[0].person == lead
    assert third[0].hotline.name == "Engineering Manager" and third[0].phone == "+15550010"
    assert fourth[0].hotline.name == "CTO" and fourth[0].phone == "+15550011"
    assert all(target.is_reachable for step in steps for target in step.targets)


def test_targets_are_resolved_when_their_level_fires(team_setup, guide_policy):
    team, people, _ = team_setup
    # Paging starts 10 minutes before Monday's handoff; P1 level 1 fires 30 min later, in Week 2.
    level = guide_policy.levels.all()[1]
    EscalationTarget.objects.create(level=level, kind="rotation_slot", slot=Slot.PRIMARY)
    policy = policy_with_levels(guide_policy)
    started = datetime(2026, 1, 12, 8, 50, tzinfo=UTC)
    steps = plan_escalation(policy, severity("P1"), started, team=team)
    assert steps[0].targets[0].person == people["A"]
    assert [t.person for t in steps[1].targets if t.kind == "rotation_slot"] == [people["B"]]


def test_plan_escalation_costs_a_fixed_number_of_queries(guide_policy, team_setup, django_assert_max_num_queries):
    team, *_ = team_setup
    p0 = severity("P0")
    with django_assert_max_num_queries(3):
        plan_escalation(guide_policy, p0, WEDNESDAY_AFTERNOON, team=team)


def test_a_gap_in_the_rotation_is_planned_as_nobody_on_call(guide_policy, team_setup):
    team, *_ = team_setup
    steps = plan_escalation(guide_policy, severity("P1"), datetime(2025, 12, 1, tzinfo=UTC), team=team)
    assert steps[0].targets[0].person is None
    assert "nobody on call" in steps[0].targets[0].label


def test_escalation_times_is_pure_and_respects_a_tighter_policy():
    p0 = severity("P0")
    start = WEDNESDAY_AFTERNOON
    # Levels spaced 2 min apart fire every 2 min even for P0; the acknowledge target is an upper bound.
    times = escalation_times([timedelta(0), timedelta(minutes=2), timedelta(minutes=4)], p0, start)
    assert times == [start, start + timedelta(minutes=2), start + timedelta(minutes=4)]
    assert escalation_times([], p0, start) == []

"""Shifts and who-is-on-call: the guide's rotation table, DST in three zones, year boundaries, overrides, gaps."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from oncall.escalation import who_is_on_call
from oncall.models import Override, Rotation, Slot
from oncall.resolver import RotationPlan
from oncall.selectors import rotation_plans

from .factories import OverrideFactory, PersonFactory, RotationFactory, add_members, guide_rotation

pytestmark = pytest.mark.django_db


def plan_for(rotation: Rotation) -> RotationPlan:
    return rotation_plans(
        Rotation.objects.filter(pk=rotation.pk),
        start=datetime(2000, 1, 1, tzinfo=UTC),
        end=datetime(2100, 1, 1, tzinfo=UTC),
    )[0]


def assert_tiles(shifts, start, end):
    """Segments of one slot cover [start, end) exactly: no gaps, no overlaps."""
    assert shifts[0].start == start
    assert shifts[-1].end == end
    for before, after in zip(shifts, shifts[1:], strict=False):
        assert before.end == after.start
        assert before.start < before.end


def test_guide_week_table_primary_secondary_and_incident_commander():
    rotation, p = guide_rotation(start_date=date(2026, 1, 5))  # a Monday
    plan = plan_for(rotation)
    expected = [  # the guide's Week 1, 2, 3 (and Week 4 wraps around)
        (p["A"], p["B"], p["X"]),
        (p["B"], p["C"], p["Y"]),
        (p["C"], p["A"], p["X"]),
        (p["A"], p["B"], p["Y"]),
    ]
    for week, (primary, secondary, commander) in enumerate(expected):
        at = datetime(2026, 1, 5, 12, tzinfo=UTC) + timedelta(weeks=week)
        assert plan.who_is_on_call(Slot.PRIMARY, at) == primary
        assert plan.who_is_on_call(Slot.SECONDARY, at) == secondary
        assert plan.who_is_on_call(Slot.INCIDENT_COMMANDER, at) == commander


def test_start_date_moves_to_the_handoff_weekday():
    rotation = RotationFactory(start_date=date(2026, 1, 7), handoff_weekday=0)  # a Wednesday; handoffs on Monday
    assert rotation.first_handoff_date == date(2026, 1, 12)
    daily = RotationFactory(start_date=date(2026, 1, 7), shift_length_days=1)
    assert daily.first_handoff_date == date(2026, 1, 7)


def test_handoff_exactly_at_boundary_belongs_to_the_next_shift():
    rotation, p = guide_rotation(start_date=date(2026, 1, 5))
    plan = plan_for(rotation)
    handoff = datetime(2026, 1, 12, 9, tzinfo=UTC)
    assert plan.who_is_on_call(Slot.PRIMARY, handoff - timedelta(microseconds=1)) == p["A"]
    assert plan.who_is_on_call(Slot.PRIMARY, handoff) == p["B"]
    assert plan.next_handoff(handoff) == handoff + timedelta(weeks=1)


@pytest.mark.parametrize(
    ("zone", "weekday", "start_date", "transitions"),
    [
        # Weekly Monday 09:00 across the March and November US changes.
        ("America/New_York", 0, date(2026, 1, 5), [date(2026, 3, 8), date(2026, 11, 1)]),
        # Weekly Monday 09:00 across the last Sundays of March and October.
        ("Europe/Berlin", 0, date(2026, 1, 5), [date(2026, 3, 29), date(2026, 10, 25)]),
        # Southern hemisphere: DST ends in April and starts in October; Sunday handoffs land on the change days.
        ("Australia/Sydney", 6, date(2026, 1, 4), [date(2026, 4, 5), date(2026, 10, 4)]),
    ],
)
def test_weekly_handoff_stays_at_local_wall_time_across_both_dst_changes(zone, weekday, start_date, transitions):
    rotation = RotationFactory(timezone=zone, handoff_weekday=weekday, start_date=start_date)
    add_members(rotation, Slot.PRIMARY, PersonFactory.create_batch(3))
    plan = plan_for(rotation)
    tz = ZoneInfo(zone)
    for change in transitions:
        start = datetime.combine(change - timedelta(days=20), time(0), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(change + timedelta(days=20), time(0), tzinfo=tz).astimezone(UTC)
        shifts = plan.shifts_between(start, end, [Slot.PRIMARY])
        assert_tiles(shifts, start, end)
        handoffs = [shift.start for shift in shifts[1:]]
        assert len(handoffs) >= 5
        for handoff in handoffs:
            local = handoff.astimezone(tz)
            assert (local.hour, local.minute, local.weekday()) == (9, 0, weekday)
        offsets = {h.astimezone(tz).utcoffset() for h in handoffs}
        assert len(offsets) == 2, "the window must straddle the change"
        lengths = {shift.end - shift.start for shift in shifts[1:-1]}
        assert lengths <= {timedelta(days=7), timedelta(days=7, hours=1), timedelta(days=7, hours=-1)}
        for k in range(len(shifts) - 2):  # members keep rotating one per shift, whatever the offset
            assert shifts[k + 1].index == shifts[k].index + 1


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Australia/Sydney"])
def test_daily_handoff_inside_the_skipped_hour_leaves_no_gap_or_overlap(zone):
    # 02:30 does not exist on the spring-forward day in any of these zones.
    rotation = RotationFactory(
        timezone=zone, shift_length_days=1, handoff_time=time(2, 30), start_date=date(2026, 1, 1)
    )
    add_members(rotation, Slot.PRIMARY, PersonFactory.create_batch(2))
    plan = plan_for(rotation)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    shifts = plan.shifts_between(start, end, [Slot.PRIMARY])
    assert_tiles(shifts, start, end)
    assert len(shifts) in (365, 366)
    hourly = [start + timedelta(hours=h) for h in range(0, 24 * 365)]
    for moment in hourly[::7]:
        shift = plan.shift_at(Slot.PRIMARY, moment)
        assert shift.start <= moment < shift.end


def test_year_boundary_keeps_counting_shifts():
    rotation, p = guide_rotation(start_date=date(2026, 1, 5), timezone="Europe/Berlin")
    plan = plan_for(rotation)
    start, end = datetime(2026, 12, 20, tzinfo=UTC), datetime(2027, 1, 20, tzinfo=UTC)
    shifts = plan.shifts_between(start, end, [Slot.PRIMARY])
    assert_tiles(shifts, start, end)
    # 2026-12-28 is shift 51 (51 weeks after 2026-01-05); 51 % 3 == 0 -> Engineer A, then B on 2027-01-04.
    assert plan.who_is_on_call(Slot.PRIMARY, datetime(2027, 1, 1, tzinfo=UTC)) == p["A"]
    assert plan.who_is_on_call(Slot.PRIMARY, datetime(2027, 1, 4, 8, tzinfo=UTC)) == p["B"]
    assert plan.shift_at(Slot.PRIMARY, datetime(2027, 1, 1, tzinfo=UTC)).index == 51


def test_override_wins_over_the_rotation_and_straddles_a_handoff():
    rotation, p = guide_rotation(start_date=date(2026, 1, 5))
    cover = p["C"]
    override = OverrideFactory(
        rotation=rotation,
        person=cover,
        start=datetime(2026, 1, 10, 12, tzinfo=UTC),
        end=datetime(2026, 1, 14, 12, tzinfo=UTC),
        reason="vacation",
    )
    plan = plan_for(rotation)
    start, end = datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 19, 9, tzinfo=UTC)
    shifts = plan.shifts_between(start, end, [Slot.PRIMARY])
    assert_tiles(shifts, start, end)
    assert [(s.person, s.override, s.index) for s in shifts] == [
        (p["A"], None, 0),
        (cover, override, 0),
        (cover, override, 1),
        (p["B"], None, 1),
    ]
    assert shifts[1].start == override.start and shifts[2].end == override.end
    assert shifts[1].end == datetime(2026, 1, 12, 9, tzinfo=UTC)  # split at the handoff
    # Other slots are untouched by a primary override.
    assert plan.who_is_on_call(Slot.SECONDARY, datetime(2026, 1, 11, tzinfo=UTC)) == p["B"]


def test_later_override_wins_where_overrides_partially_overlap():
    rotation, p = guide_rotation(start_date=date(2026, 1, 5))
    first = OverrideFactory(
        rotation=rotation,
        person=p["B"],
        start=datetime(2026, 1, 6, tzinfo=UTC),
        end=datetime(2026, 1, 8, tzinfo=UTC),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    second = OverrideFactory(
        rotation=rotation,
        person=p["C"],
        start=datetime(2026, 1, 7, tzinfo=UTC),
        end=datetime(2026, 1, 9, tzinfo=UTC),
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    plan = plan_for(rotation)
    shifts = plan.shifts_between(datetime(2026, 1, 6, tzinfo=UTC), datetime(2026, 1, 10, tzinfo=UTC), [Slot.PRIMARY])
    assert [(s.person, s.override, s.start.day, s.end.day) for s in shifts] == [
        (p["B"], first, 6, 7),
        (p["C"], second, 7, 9),
        (p["A"], None, 9, 10),
    ]


def test_gaps_are_reported_when_a_slot_has_no_member():
    rotation = RotationFactory(start_date=date(2026, 1, 5))
    add_members(rotation, Slot.PRIMARY, PersonFactory.create_batch(2))
    plan = plan_for(rotation)
    start, end = datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 19, 9, tzinfo=UTC)
    gaps = plan.gaps_between(start, end)
    assert {gap.slot for gap in gaps} == {Slot.SECONDARY, Slot.INCIDENT_COMMANDER}
    assert plan.gaps_between(start, end, [Slot.PRIMARY]) == []
    assert plan.who_is_on_call(Slot.SECONDARY, start) is None
    # Before the first handoff the rotation has not started: a gap as well.
    assert plan.who_is_on_call(Slot.PRIMARY, start - timedelta(hours=1)) is None


def test_override_fills_a_gap():
    rotation = RotationFactory(start_date=date(2026, 1, 5))
    person = PersonFactory()
    rotation.team.members.add(person)
    OverrideFactory(
        rotation=rotation,
        slot=Slot.SECONDARY,
        person=person,
        start=datetime(2026, 1, 6, tzinfo=UTC),
        end=datetime(2026, 1, 7, tzinfo=UTC),
    )
    plan = plan_for(rotation)
    assert plan.who_is_on_call(Slot.SECONDARY, datetime(2026, 1, 6, 12, tzinfo=UTC)) == person
    gaps = plan.gaps_between(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC), [Slot.SECONDARY])
    assert all(
        not (gap.start < datetime(2026, 1, 7, tzinfo=UTC) and gap.end > datetime(2026, 1, 6, tzinfo=UTC))
        for gap in gaps
    )


def test_override_that_ends_before_it_starts_is_a_validation_error():
    rotation, p = guide_rotation()
    override = Override(
        rotation=rotation,
        slot=Slot.PRIMARY,
        person=p["A"],
        start=datetime(2026, 2, 2, tzinfo=UTC),
        end=datetime(2026, 2, 1, tzinfo=UTC),
    )
    with pytest.raises(ValidationError) as error:
        override.full_clean()
    assert "end" in error.value.message_dict


def test_override_for_a_person_outside_the_team_is_a_validation_error():
    rotation, _ = guide_rotation()
    outsider = PersonFactory(name="Outsider")
    override = Override(
        rotation=rotation,
        slot=Slot.PRIMARY,
        person=outsider,
        start=datetime(2026, 2, 1, tzinfo=UTC),
        end=datetime(2026, 2, 2, tzinfo=UTC),
    )
    with pytest.raises(ValidationError) as error:
        override.full_clean()
    assert "not a member" in error.value.message_dict["person"][0]


def test_who_is_on_call_for_a_rotation_or_a_team_in_three_queries(django_assert_max_num_queries):
    rotation, p = guide_rotation(start_date=date(2026, 1, 5))
    OverrideFactory(
        rotation=rotation, person=p["C"], start=datetime(2026, 1, 6, tzinfo=UTC), end=datetime(2026, 1, 7, tzinfo=UTC)
    )
    with django_assert_max_num_queries(3):
        assert who_is_on_call(rotation, Slot.PRIMARY, datetime(2026, 1, 6, 12, tzinfo=UTC)) == p["C"]
    with django_assert_max_num_queries(3):
        assert who_is_on_call(rotation.team, Slot.PRIMARY, datetime(2026, 1, 7, 12, tzinfo=UTC)) == p["A"]


def test_plans_load_in_three_queries_and_resolve_without_any(django_assert_num_queries):
    for _ in range(5):
        rotation, p = guide_rotation(start_date=date(2026, 1, 5))
        OverrideFactory(
            rotation=rotation,
            person=p["C"],
            start=datetime(2026, 2, 1, tzinfo=UTC),
            end=datetime(2026, 2, 3, tzinfo=UTC),
        )
    with django_assert_num_queries(3):
        plans = rotation_plans(start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC))
    with django_assert_num_queries(0):
        for plan in plans:
            for hour in range(0, 24 * 365, 5):
                plan.who_is_on_call(Slot.PRIMARY, datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hour))
            assert plan.who_is_on_call(Slot.PRIMARY, datetime(2026, 2, 2, tzinfo=UTC)).name == "Engineer C"


def test_a_deactivated_members_turn_is_a_gap_and_the_order_is_kept():
    rotation, p = guide_rotation(start_date=date(2026, 1, 5))
    p["B"].is_active = False
    p["B"].save()
    plan = plan_for(rotation)
    weeks = [plan.who_is_on_call(Slot.PRIMARY, datetime(2026, 1, 6, tzinfo=UTC) + timedelta(weeks=w)) for w in range(3)]
    assert weeks == [p["A"], None, p["C"]]
    assert [
        g.index
        for g in plan.gaps_between(
            datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 26, 9, tzinfo=UTC), [Slot.PRIMARY]
        )
    ] == [1]

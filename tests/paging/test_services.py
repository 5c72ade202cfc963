"""Paging and escalation, time-controlled: each severity's full path, acknowledgement, resolution, severity raise,
repeats and hotlines, reminders, idempotent ticks."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.models import EntryKind, Role, Status
from incidents.profiles.services import set_time_zone
from incidents.profiles.zones import format_moment
from incidents.services.roles import assign_role
from incidents.services.status import acknowledge_incident, change_severity, change_status
from incidents.services.updates import post_status_update
from oncall.models import EscalationPolicy
from oncall.paging import reminders
from oncall.paging.models import Notification, Page, Reminder
from oncall.paging.services.engine import EscalationWrites, advance_page, escalate_due_pages, run_escalation_tick
from oncall.paging.services.recipients import EscalationContext
from tests.factories import ResponderFactory, declare, severity
from tests.paging.factories import paged_team

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # business hours (UTC, Mon-Fri 09-17)
SATURDAY_03 = datetime(2026, 2, 28, 3, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


def at(minutes: float, start=MONDAY_10):
    return start + timedelta(minutes=minutes)


def tick(clock, moment):
    clock.move_to(moment)
    run_escalation_tick()


def fired_levels(page: Page) -> list[tuple[int, int]]:
    """(repeat, level) of every level that fired, from the outbox."""
    rows = Notification.objects.filter(page=page, purpose=Notification.Purpose.PAGE)
    return sorted(set(rows.values_list("repeat", "level")))


def page_of(incident) -> Page:
    return Page.objects.get(incident=incident, state__in=Page.OPEN_STATES)


def test_declaring_pages_the_owning_teams_on_call_by_every_rule(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    assert (page.team, page.policy.is_default, page.escalation_level) == (team.team, True, 0)
    assert page.escalate_at == at(30)  # P1 escalates after 30 min
    assert page.acknowledge_due_at == at(5)
    rows = {row.channel: row for row in Notification.objects.filter(page=page)}
    assert rows["email"].person == team.oncall and rows["email"].status == Notification.Status.PENDING
    assert rows["email"].scheduled_for == MONDAY_10
    # Every rule fires unless the page is acknowledged first: the SMS rule (no delay) too.
    assert rows["sms"].status == Notification.Status.PENDING and rows["sms"].scheduled_for == MONDAY_10
    bodies = list(incident.timeline.filter(kind=EntryKind.SYSTEM).values_list("body", flat=True))
    assert any("Paged level 1 (On-call engineer): Platform Engineer" in body for body in bodies)


def test_p1_full_path_follows_the_guide_then_repeats_then_alerts_the_hotlines(clock, responder, settings):
    settings.PAGING_REPEAT_POLICY_TIMES = 2
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    tick(clock, at(29, MONDAY_10) + timedelta(seconds=59))
    assert fired_levels(page) == [(0, 0)]
    tick(clock, at(30))
    assert fired_levels(page) == [(0, 0), (0, 1)]
    lead_rows = Notification.objects.filter(page=page, level=1)
    assert {row.person for row in lead_rows} == {team.lead}
    tick(clock, at(45))
    tick(clock, at(75))
    assert fired_levels(page) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    hotline_numbers = set(Notification.objects.filter(page=page, level__in=[2, 3]).values_list("address", flat=True))
    assert hotline_numbers == {"+15550010", "+15550011"}  # Engineering Manager, CTO
    # Second pass starts once the last level's acknowledge target (5 min) has passed.
    tick(clock, at(79))
    assert fired_levels(page)[-1] == (0, 3)
    tick(clock, at(80))
    assert fired_levels(page)[-1] == (1, 0)
    tick(clock, at(80 + 75))
    page.refresh_from_db()
    assert fired_levels(page)[-1] == (1, 3) and page.state == Page.State.ACTIVE
    tick(clock, at(80 + 80))
    page.refresh_from_db()
    assert page.state == Page.State.EXHAUSTED and page.escalate_at is None
    hotline_alerts = Notification.objects.filter(page=page, purpose=Notification.Purpose.HOTLINE)
    assert set(hotline_alerts.values_list("address", flat=True)) == {"+15550010", "+15550011"}
    written = Notification.objects.filter(page=page).count()
    tick(clock, at(600))
    assert Notification.objects.filter(page=page).count() == written  # exhausted: nothing more


def test_p0_escalates_immediately_every_acknowledge_target(clock, responder, settings):
    settings.PAGING_REPEAT_POLICY_TIMES = 1
    team = paged_team()
    incident = declare(by=responder, level="P0", services=[team.service])
    page = page_of(incident)
    assert page.escalate_at == at(5)
    for minutes, expected in ((4, 1), (5, 2), (10, 3), (15, 4)):
        tick(clock, at(minutes))
        assert len(fired_levels(page)) == expected, minutes
    tick(clock, at(20))
    page.refresh_from_db()
    assert page.state == Page.State.EXHAUSTED


def test_p2_waits_two_hours_before_the_first_escalation(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P2", services=[team.service])
    page = page_of(incident)
    tick(clock, at(119))
    assert fired_levels(page) == [(0, 0)]
    tick(clock, at(120))
    tick(clock, at(135))
    tick(clock, at(165))
    assert fired_levels(page) == [(0, 0), (0, 1), (0, 2), (0, 3)]


def test_p3_in_hours_pages_level_one_only_and_never_escalates(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P3", services=[team.service])
    page = page_of(incident)
    assert fired_levels(page) == [(0, 0)] and page.escalate_at is None
    tick(clock, at(60 * 24 * 3))
    assert fired_levels(page) == [(0, 0)]


def test_p3_out_of_hours_pages_nobody_until_business_hours(responder):
    with time_machine.travel(SATURDAY_03, tick=False) as clock:
        team = paged_team()
        incident = declare(by=responder, level="P3", services=[team.service])
        page = page_of(incident)
        monday_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        assert page.escalation_level is None and page.escalate_at == monday_9
        assert not Notification.objects.filter(page=page).exists()
        tick(clock, monday_9 - timedelta(seconds=1))
        assert not Notification.objects.filter(page=page).exists()
        tick(clock, monday_9)
        assert fired_levels(page) == [(0, 0)]
        page.refresh_from_db()
        assert page.escalate_at is None and page.acknowledge_due_at == monday_9 + timedelta(minutes=5)


def test_p0_out_of_hours_pages_at_once(responder):
    with time_machine.travel(SATURDAY_03, tick=False):
        team = paged_team()
        incident = declare(by=responder, level="P0", services=[team.service])
        assert fired_levels(page_of(incident)) == [(0, 0)]


def test_acknowledge_stops_escalation_and_cancels_waiting_notifications(clock, responder):
    team = paged_team(oncall_channels=("email", "sms"))
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    clock.move_to(at(3))
    acknowledge_incident(incident=incident, by=responder)
    page.refresh_from_db()
    assert page.state == Page.State.ACKNOWLEDGED and page.acknowledged_by == responder
    assert page.escalate_at is None
    statuses = set(Notification.objects.filter(page=page).values_list("status", flat=True))
    assert statuses == {Notification.Status.CANCELLED}
    tick(clock, at(200))
    assert fired_levels(page) == [(0, 0)]
    # One acknowledgement, one timeline entry (the incident's); the page keeps who and through which channel.
    assert incident.timeline.filter(body__icontains="acknowledged").exclude(kind="checklist").count() == 1
    assert page.acknowledged_via == "portal"


def test_acknowledged_page_never_reopens(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    acknowledge_incident(incident=incident, by=responder)
    Page.objects.filter(pk=page.pk).update(escalate_at=at(1))  # even with a stale deadline left behind
    tick(clock, at(31))
    page.refresh_from_db()
    assert page.state == Page.State.ACKNOWLEDGED and fired_levels(page) == [(0, 0)]


def test_resolving_stops_all_paging(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    page.refresh_from_db()
    assert page.state == Page.State.STOPPED and page.stop_reason == "incident resolved"
    tick(clock, at(120))
    assert fired_levels(page) == [(0, 0)]


def test_reopening_a_resolved_incident_pages_again_with_a_new_page(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    old = page_of(incident)
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    clock.move_to(at(60))
    change_status(incident=incident, to=Status.INVESTIGATING, by=responder, note="It is back")

    new = page_of(incident)
    assert new.pk != old.pk and new.state == Page.State.ACTIVE
    assert (new.team, new.severity.level, new.escalation_level) == (team.team, "P1", 0)
    assert new.started_at == at(60) and new.escalate_at == at(90)
    email = Notification.objects.get(page=new, channel="email")
    assert email.person == team.oncall and email.status == Notification.Status.PENDING
    assert email.scheduled_for == at(60)
    old.refresh_from_db()
    assert old.state == Page.State.STOPPED and old.stop_reason == "incident resolved"  # never reopened
    assert Notification.objects.filter(page=old, status=Notification.Status.PENDING).count() == 0
    bodies = list(
        incident.timeline.filter(kind=EntryKind.SYSTEM, occurred_at__gte=at(60)).values_list("body", flat=True)
    )
    assert any(body.startswith(f"Paging started for {team.team}") for body in bodies)
    assert any("Paged level 1 (On-call engineer): Platform Engineer" in body for body in bodies)
    # The new page escalates like a declared one, and acknowledging stops it.
    tick(clock, at(91))
    assert fired_levels(new) == [(0, 0), (0, 1)]
    acknowledge_incident(incident=incident, by=responder)
    new.refresh_from_db()
    assert new.state == Page.State.ACKNOWLEDGED


def test_reopening_from_monitoring_does_not_page_twice(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    change_status(incident=incident, to=Status.MONITORING, by=responder)
    clock.move_to(at(10))
    change_status(incident=incident, to=Status.INVESTIGATING, by=responder)
    assert list(Page.objects.filter(incident=incident).values_list("pk", "state")) == [(page.pk, Page.State.ACTIVE)]
    assert fired_levels(page) == [(0, 0)]


def test_reopening_from_monitoring_after_acknowledgement_pages_nobody(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    acknowledge_incident(incident=incident, by=responder)
    change_status(incident=incident, to=Status.MONITORING, by=responder)
    change_status(incident=incident, to=Status.INVESTIGATING, by=responder)
    assert not Page.objects.filter(incident=incident, state__in=Page.OPEN_STATES).exists()
    assert Page.objects.filter(incident=incident).count() == 1


def test_raising_severity_supersedes_the_page_and_pages_at_the_new_severity(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P2", services=[team.service])
    old = page_of(incident)
    acknowledge_incident(incident=incident, by=responder)
    clock.move_to(at(10))
    change_severity(incident=incident, severity=severity("P0"), by=responder, reason="Full outage")
    new = page_of(incident)
    assert new.pk != old.pk and new.severity.level == "P0" and new.escalate_at == at(15)
    old.refresh_from_db()
    assert old.state == Page.State.ACKNOWLEDGED  # never reopened
    # The incident was acknowledged before; acknowledging again stops the new page.
    acknowledge_incident(incident=incident, by=responder)
    new.refresh_from_db()
    assert new.state == Page.State.ACKNOWLEDGED


def test_lowering_severity_does_not_restart_paging(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    change_severity(incident=incident, severity=severity("P2"), by=responder, reason="Smaller")
    assert Page.objects.filter(incident=incident).count() == 1


def test_team_policy_wins_over_the_default(clock, responder):
    team = paged_team()
    own = EscalationPolicy.objects.create(name="Platform only", team=team.team)
    level = own.levels.create(position=0, name="Lead first", delay=timedelta(0))
    level.targets.create(kind="team_lead")
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    assert page.policy == own
    assert set(Notification.objects.filter(page=page).values_list("person", flat=True)) == {team.lead.pk}


def test_no_owning_team_uses_the_default_policy_and_records_the_gap(clock, responder):
    incident = declare(by=responder, level="P1")
    page = page_of(incident)
    assert page.team is None and page.policy.is_default
    body = incident.timeline.filter(body__startswith="Paged level 1").get().body
    assert "no team owns the affected services" in body


def test_running_the_same_step_twice_writes_nothing_twice(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    clock.move_to(at(30))
    stale = Page.objects.get(pk=page.pk)  # a second worker that read the row before the first saved
    run_escalation_tick()
    count = Notification.objects.filter(page=page).count()
    context = EscalationContext(at(30))
    stale.incident = incident
    writes = EscalationWrites()
    advance_page(stale, context, writes)
    writes.flush()
    assert Notification.objects.filter(page=page).count() == count


def test_escalation_tick_costs_a_fixed_number_of_queries_per_batch(
    clock, responder, settings, django_capture_on_commit_callbacks
):
    settings.LIVE_PUSH = True  # every timeline entry is announced to the live pages after the commit
    team = paged_team()
    incidents = [declare(by=responder, level="P1", services=[team.service]) for _ in range(8)]
    clock.move_to(at(30))
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True) as hooks:
        assert escalate_due_pages(limit=100) == len(incidents)
    # A fixed number of statements per batch, whatever the number of pages: the claim, the policy's levels,
    # rotations, teams, contact methods, webhook endpoints, then bulk writes (pages, timeline, outbox, audit);
    # after the commit, the live pages hear of each timeline entry without reading its incident again.
    assert len(hooks) >= len(incidents)
    assert len(queries.captured_queries) <= 20


def test_escalation_is_in_the_audit_trail_and_on_the_timeline(clock, responder):
    from incidents.audit.models import AuditRecord

    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    page = page_of(incident)
    tick(clock, at(30))
    change = AuditRecord.objects.filter(object_type="paging.page", object_id=str(page.pk), action="changed").first()
    assert change.before["escalation_level"] == 0 and change.after["escalation_level"] == 1
    assert change.incident_id == incident.pk
    entry = incident.timeline.filter(body__startswith="Paged level 2").get()
    assert entry.body_html.startswith("<p>Paged level 2")
    assert AuditRecord.objects.filter(object_type="incidents.timelineentry", object_id=str(entry.pk)).exists()


def test_missed_acknowledge_target_is_noted_once(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    clock.move_to(at(4))
    assert reminders.note_missed_acknowledge_targets() == 0
    clock.move_to(at(5))
    assert reminders.note_missed_acknowledge_targets() == 1
    clock.move_to(at(6))
    assert reminders.note_missed_acknowledge_targets() == 0
    notes = incident.timeline.filter(body__startswith="Acknowledge target missed")
    assert notes.count() == 1 and notes.get().is_key_event


def test_acknowledged_in_time_means_no_missed_target_note(clock, responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    clock.move_to(at(2))
    acknowledge_incident(incident=incident, by=responder)
    clock.move_to(at(10))
    assert reminders.note_missed_acknowledge_targets() == 0


def test_update_cadence_missed_reminds_commander_and_communications_lead_once(clock, responder):
    from tests.oncall.factories import PersonFactory
    from tests.paging.factories import with_methods

    comms = ResponderFactory(email="comms@example.com")
    set_time_zone(user=comms, time_zone="Europe/Berlin")
    with_methods(PersonFactory(name="Comms Person", user=comms), "sms")
    incident = declare(by=responder, level="P1")
    assign_role(incident=incident, role=Role.COMMUNICATIONS_LEAD, holder=comms, by=responder)
    incident.refresh_from_db()
    assert incident.next_update_due_at == at(30)
    clock.move_to(at(29))
    assert reminders.remind_update_cadence() == 0
    clock.move_to(at(31))
    assert reminders.remind_update_cadence() == 1
    assert reminders.remind_update_cadence() == 0
    rows = Notification.objects.filter(purpose=Notification.Purpose.REMINDER)
    assert {(row.channel, row.address) for row in rows} == {
        ("email", responder.email),  # no on-call contact entry: the account's email
        ("sms", "+14155552671"),  # the Communications Lead's first contact method
    }
    # Each reminder names the deadline in its reader's zone, in the portal's one format, the zone named.
    due = at(30)
    by_address = {row.address: row.message for row in rows}
    assert f"was due at {format_moment(due, ZoneInfo('Europe/Berlin'))} (P1" in by_address["+14155552671"]
    assert f"was due at {format_moment(due, UTC)} (P1" in by_address[responder.email]
    assert " CET (P1" in by_address["+14155552671"] or " CEST (P1" in by_address["+14155552671"]
    note = incident.timeline.filter(body__startswith="Internal update overdue").get()
    assert "Incident Commander" in note.body and "Communications Lead" in note.body
    # A new internal update moves the deadline; missing that one reminds again.
    post_status_update(
        incident=incident, kind="internal", status="investigating", what_we_know="Still slow", by=responder
    )
    clock.move_to(at(31 + 31))
    assert reminders.remind_update_cadence() == 1
    assert Reminder.objects.filter(incident=incident, kind=Reminder.Kind.UPDATE_CADENCE).count() == 2


def test_resolved_for_a_day_reminds_the_commander_to_close_once(clock, responder):
    incident = declare(by=responder, level="P2")
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    clock.move_to(at(60 * 24 - 1))
    assert reminders.remind_to_close() == 0
    clock.move_to(at(60 * 24))
    assert reminders.remind_to_close() == 1
    assert reminders.remind_to_close() == 0
    row = Notification.objects.get(purpose=Notification.Purpose.REMINDER)
    assert row.address == responder.email and "closure checklist" in row.message
    assert f"(since {format_moment(at(0), UTC)})" in row.message
    assert incident.timeline.filter(body__startswith="Resolved for 24 hours").count() == 1


def test_closed_incident_gets_no_close_reminder(clock, manager):
    incident = declare(by=manager, level="P2")
    change_status(incident=incident, to=Status.RESOLVED, by=manager)
    change_status(incident=incident, to=Status.CLOSED, by=manager, override_reason="Test")
    clock.move_to(at(60 * 25))
    assert reminders.remind_to_close() == 0

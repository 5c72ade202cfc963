from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from incidents import selectors
from incidents.errors import DomainError, InvalidTransition, PermissionDenied
from incidents.models import ChecklistItem, ChecklistTemplateItem, EntryKind, Role, Status, TimelineEntry
from incidents.services.checklist import attach_runbook, tick_checklist_item
from incidents.services.entries import add_timeline_entry, record_five_whys
from incidents.services.roles import assign_role
from incidents.services.status import acknowledge_incident, change_severity, change_status
from incidents.services.updates import post_status_update
from tests.factories import ResponderFactory, ServiceFactory, ViewerFactory, declare, severity

pytestmark = pytest.mark.django_db


def test_declare_copies_every_guide_checklist_and_makes_declarer_commander(responder):
    incident = declare(by=responder, services=[ServiceFactory()])
    templates = ChecklistTemplateItem.objects.filter(is_active=True)
    assert incident.checklist_items.count() == templates.count() > 0
    assert set(incident.checklist_items.values_list("phase", flat=True)) == {
        "triage",
        "detection",
        "response",
        "resolution",
        "recovery",
        "closure",
    }
    assert selectors.current_holder(incident, Role.INCIDENT_COMMANDER) == responder
    assert incident.reference == f"INC-{incident.number}"
    assert incident.timeline.filter(kind=EntryKind.SYSTEM, body__contains="declared").exists()


def test_declare_names_another_commander(responder):
    commander = ResponderFactory()
    incident = declare(by=responder, incident_commander=commander)
    assert selectors.current_holder(incident, Role.INCIDENT_COMMANDER) == commander


def test_checklist_copies_are_independent_of_later_template_edits(responder):
    incident = declare(by=responder)
    ChecklistTemplateItem.objects.filter(phase="triage", position=1).update(text="Changed later")
    assert incident.checklist_items.get(phase="triage", position=1).text == "Determine severity level"


@time_machine.travel("2025-01-15 14:35:00+00:00", tick=False)
def test_declare_sets_response_and_update_deadlines_from_severity(responder):
    incident = declare(by=responder, level="P0")
    now = timezone.now()
    assert incident.response_due_at == now + timedelta(minutes=15)
    assert incident.next_update_due_at == now + timedelta(minutes=15)


@time_machine.travel("2025-01-17 16:00:00+00:00", tick=False)  # a Friday
def test_p3_response_target_is_end_of_next_business_day(responder, settings):
    settings.BUSINESS_TIMEZONE = "UTC"
    incident = declare(by=responder, level="P3")
    assert incident.response_due_at.isoformat() == "2025-01-20T17:00:00+00:00"  # Monday close
    assert incident.next_update_due_at is None


def test_full_lifecycle_stamps_each_time(responder):
    incident = declare(by=responder)
    for to in ("identified", "monitoring", "resolved"):
        incident = change_status(incident=incident, to=to, by=responder)
    assert incident.identified_at and incident.mitigated_at and incident.resolved_at
    assert incident.next_update_due_at is None
    for item in incident.checklist_items.filter(phase="closure"):
        tick_checklist_item(item=item, by=responder)
    incident = change_status(incident=incident, to="closed", by=responder)
    assert incident.status == Status.CLOSED and incident.closed_at
    assert incident.timeline.filter(kind=EntryKind.STATUS).count() == 4


@pytest.mark.parametrize(
    ("path", "illegal"),
    [((), "closed"), (("resolved",), "monitoring"), (("identified",), "identified")],
)
def test_illegal_transitions_raise_with_reason(responder, path, illegal):
    incident = declare(by=responder)
    for to in path:
        incident = change_status(incident=incident, to=to, by=responder)
    entries_before = TimelineEntry.objects.count()
    with pytest.raises(InvalidTransition) as error:
        change_status(incident=incident, to=illegal, by=responder)
    assert incident.reference in error.value.message
    assert TimelineEntry.objects.count() == entries_before


def test_closed_is_final(responder, manager):
    incident = declare(by=responder)
    change_status(incident=incident, to="resolved", by=responder)
    change_status(incident=incident, to="closed", by=manager, override_reason="Duplicate of INC-1")
    with pytest.raises(InvalidTransition):
        change_status(incident=incident, to="investigating", by=manager)


def test_reopen_from_resolved_and_monitoring(responder):
    incident = declare(by=responder)
    change_status(incident=incident, to="monitoring", by=responder)
    incident = change_status(incident=incident, to="investigating", by=responder)
    change_status(incident=incident, to="resolved", by=responder)
    incident = change_status(incident=incident, to="investigating", by=responder, note="Errors are back")
    assert incident.status == Status.INVESTIGATING and incident.resolved_at is None
    assert incident.next_update_due_at is not None


def test_close_requires_closure_checklist_or_manager_override(responder, manager):
    incident = declare(by=responder)
    change_status(incident=incident, to="resolved", by=responder)
    with pytest.raises(InvalidTransition, match="closure checklist"):
        change_status(incident=incident, to="closed", by=responder)
    with pytest.raises(PermissionDenied):
        change_status(incident=incident, to="closed", by=responder, override_reason="tired")
    incident = change_status(incident=incident, to="closed", by=manager, override_reason="False alarm")
    assert incident.status == Status.CLOSED
    assert incident.timeline.filter(body__contains="False alarm").exists()


def test_viewer_cannot_change_incidents(responder):
    incident = declare(by=responder)
    with pytest.raises(PermissionDenied):
        change_status(incident=incident, to="identified", by=ViewerFactory())


def test_change_severity_needs_reason_and_recomputes_target(responder):
    incident = declare(by=responder, level="P2")
    with pytest.raises(DomainError) as error:
        change_severity(incident=incident, severity=severity("P0"), by=responder, reason=" ")
    assert error.value.field == "reason"
    incident = change_severity(incident=incident, severity=severity("P0"), by=responder, reason="All users down")
    assert incident.response_due_at == incident.declared_at + timedelta(minutes=15)
    assert incident.timeline.filter(kind=EntryKind.SEVERITY, body__contains="All users down").exists()


def test_assign_role_keeps_one_holder_and_history(responder):
    incident = declare(by=responder)
    first, second = ResponderFactory(), ResponderFactory()
    assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=first, by=responder)
    assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=second, by=responder)
    assignments = incident.role_assignments.filter(role=Role.TECHNICAL_LEAD)
    assert assignments.count() == 2
    assert assignments.filter(relieved_at__isnull=True).get().holder == second
    assert incident.responder_links.filter(user=first).exists()


def test_backdating_is_for_scribe_commander_or_manager(responder):
    incident = declare(by=responder)
    other = ResponderFactory()
    earlier = timezone.now() - timedelta(hours=1)
    with pytest.raises(PermissionDenied):
        add_timeline_entry(incident=incident, by=other, body="Deployed", occurred_at=earlier)
    assign_role(incident=incident, role=Role.SCRIBE, holder=other, by=responder)
    entry = add_timeline_entry(incident=incident, by=other, body="Deployed", occurred_at=earlier)
    assert entry.occurred_at == earlier and entry.is_backdated
    with pytest.raises(DomainError):
        add_timeline_entry(incident=incident, by=other, body="x", occurred_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(DomainError):
        add_timeline_entry(incident=incident, by=other, body="   ")


def test_tick_records_who_and_when_and_is_idempotent(responder):
    incident = declare(by=responder)
    item = incident.checklist_items.first()
    before = incident.timeline.filter(kind=EntryKind.CHECKLIST).count()  # "IC assigned" ticked itself
    tick_checklist_item(item=item, by=responder)
    tick_checklist_item(item=item, by=responder)
    item.refresh_from_db()
    assert item.checked_by == responder and item.checked_at
    assert incident.timeline.filter(kind=EntryKind.CHECKLIST).count() == before + 1


def test_attach_runbook_turns_actions_into_checklist(responder):
    from incidents.models import Runbook

    incident = declare(by=responder)
    runbook = Runbook.objects.get(slug="database-connection-exhaustion")
    attach_runbook(incident=incident, runbook=runbook, by=responder)
    items = ChecklistItem.objects.filter(incident=incident, runbook=runbook).order_by("position")
    assert [i.text for i in items][0] == "Check connection count"
    assert "pg_stat_activity" in items[0].command
    with pytest.raises(DomainError):
        attach_runbook(incident=incident, runbook=runbook, by=responder)


def test_five_whys_recorded_in_order(responder):
    incident = declare(by=responder)
    five = record_five_whys(
        incident=incident,
        problem="API slow response times",
        whys=["Database queries slow", "High CPU on database", "", "Inefficient query", "Missing index"],
        root_cause="Missing index after migration",
        by=responder,
    )
    assert five.whys == ["Database queries slow", "High CPU on database", "Inefficient query", "Missing index"]


@time_machine.travel("2025-01-15 14:35:00+00:00", tick=False)
def test_internal_update_resets_cadence_clock(responder):
    incident = declare(by=responder, level="P1")
    with time_machine.travel("2025-01-15 14:50:00+00:00", tick=False):
        update = post_status_update(
            incident=incident, kind="internal", status="investigating", by=responder, what_we_know="Slow queries"
        )
        incident.refresh_from_db()
        assert incident.next_update_due_at == timezone.now() + timedelta(minutes=30) == update.next_update_at


def test_update_status_must_match_template(responder):
    incident = declare(by=responder)
    with pytest.raises(DomainError) as error:
        post_status_update(
            incident=incident, kind="external", status="fixing", by=responder, title="t", description="d"
        )
    assert error.value.field == "status"
    update = post_status_update(
        incident=incident,
        kind="external",
        status="identified",
        by=responder,
        title="API slow",
        description="Some users see delays.",
        publish=True,
    )
    assert update.is_published


def test_acknowledge_once(responder):
    incident = declare(by=responder)
    other = ResponderFactory()
    acknowledge_incident(incident=incident, by=other)
    acknowledge_incident(incident=incident, by=responder)
    incident.refresh_from_db()
    assert incident.acknowledged_by == other
    assert incident.timeline.filter(body__startswith="Acknowledged").count() == 1


def test_overlong_timeline_entry_is_refused(responder):
    incident = declare(by=responder)
    with pytest.raises(DomainError) as error:
        add_timeline_entry(incident=incident, by=responder, body="x" * 20_001)
    assert error.value.field == "body"

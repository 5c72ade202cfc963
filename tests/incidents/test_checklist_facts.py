"""Checklist items that are facts tick themselves, each with a timeline entry: IC assigned, alert acknowledged,
status page updated, internal communication sent, incident resolved, post-mortem scheduled."""

from datetime import timedelta

import pytest

from incidents.models import ChecklistItem, ChecklistPhase, Status
from incidents.services.checklist import tick_checklist_item
from incidents.services.status import acknowledge_incident, change_status
from incidents.services.updates import post_status_update
from postmortems.models import PostMortem
from postmortems.services.editing import schedule_meeting
from tests.factories import ServiceFactory, declare

pytestmark = pytest.mark.django_db


def checked(incident) -> set[tuple[str, str]]:
    return {
        (item.phase, item.text) for item in ChecklistItem.objects.filter(incident=incident, checked_at__isnull=False)
    }


def ticked_entries(incident) -> list[str]:
    return list(incident.timeline.filter(body__startswith="Checked").order_by("id").values_list("body", flat=True))


def test_facts_tick_their_items_with_timeline_entries(responder):
    api = ServiceFactory(name="API")
    incident = declare(by=responder, services=[api])
    assert checked(incident) == {(ChecklistPhase.DETECTION, "IC assigned")}
    assert ticked_entries(incident) == ["Checked (Detection): IC assigned"]

    acknowledge_incident(incident=incident, by=responder)
    post_status_update(
        incident=incident, kind="internal", status="investigating", what_we_know="CPU high", by=responder
    )
    post_status_update(
        incident=incident, kind="external", status="identified", title="t", description="d", by=responder
    )  # a draft: the status page was not updated
    assert (ChecklistPhase.RESPONSE, "Status page updated") not in checked(incident)
    post_status_update(
        incident=incident,
        kind="external",
        status="identified",
        title="t",
        description="d",
        affected_services=[api],
        publish=True,
        by=responder,
    )
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    post_status_update(
        incident=incident, kind="external", status="resolved", title="t", description="d", publish=True, by=responder
    )
    post_status_update(incident=incident, kind="internal", status="resolved", what_we_know="Fixed", by=responder)
    postmortem = PostMortem.objects.get(incident=incident)
    schedule_meeting(postmortem=postmortem, by=responder, meeting_at=postmortem.due_at - timedelta(hours=1))

    assert checked(incident) == {
        (ChecklistPhase.DETECTION, "IC assigned"),
        (ChecklistPhase.DETECTION, "Alert acknowledged"),
        (ChecklistPhase.RESPONSE, "Status page updated"),
        (ChecklistPhase.RESPONSE, "Internal communication sent"),
        (ChecklistPhase.RESOLUTION, "Status page updated"),
        (ChecklistPhase.RECOVERY, "Schedule post-mortem"),
        (ChecklistPhase.CLOSURE, "Incident resolved"),
        (ChecklistPhase.CLOSURE, 'Status page updated to "Resolved"'),
        (ChecklistPhase.CLOSURE, "Internal communication sent"),
        (ChecklistPhase.CLOSURE, "Post-mortem scheduled"),
    }
    entries = ticked_entries(incident)
    assert len(entries) == 10 and "Checked (Closure): Incident resolved" in entries
    # People still tick the rest.
    assert not ChecklistItem.objects.get(incident=incident, text="Severity assessed").is_checked


def test_a_fact_already_ticked_by_hand_is_left_alone(responder):
    incident = declare(by=responder)
    item = ChecklistItem.objects.get(incident=incident, text="Alert acknowledged")
    tick_checklist_item(item=item, by=responder)
    acknowledge_incident(incident=incident, by=responder)
    item.refresh_from_db()
    assert item.checked_by == responder
    assert ticked_entries(incident).count("Checked (Detection): Alert acknowledged") == 1

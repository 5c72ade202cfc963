"""The typed timeline: builders return unsaved rows with an event_type and data, record()/record_all() save them and
announce TimelineRecorded, every interface reads the type (filter, API, post-mortem editor), and old rows get typed."""

import ast
import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.apps import apps
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import lifecycle, timeline
from incidents.models import EntryKind, EventType, Role, Status, TimelineEntry
from incidents.services.checklist import tick_checklist_item
from incidents.services.entries import add_timeline_entry
from incidents.services.roles import assign_role, relieve_role
from incidents.services.status import acknowledge_incident, change_status
from incidents.services.updates import post_status_update
from oncall.paging.services.engine import run_escalation_tick
from tests.api.factories import make_token
from tests.factories import ResponderFactory, declare, severity
from tests.paging.factories import paged_team

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def types(incident) -> list[str]:
    return list(incident.timeline.order_by("id").values_list("event_type", flat=True))


@pytest.fixture
def recorded():
    """TimelineRecorded events seen by an after-commit subscriber."""
    seen = []
    handler = seen.append
    lifecycle.subscribe(lifecycle.TimelineRecorded, handler)
    yield seen
    lifecycle.unsubscribe(lifecycle.TimelineRecorded, handler)


def test_a_builder_returns_an_unsaved_typed_row_and_record_saves_and_announces_it(
    responder, recorded, django_capture_on_commit_callbacks
):
    incident = declare(by=responder)
    entry = timeline.severity_changed(incident, old=severity("P1"), new=severity("P0"), by=responder, reason="all down")
    assert entry.pk is None
    assert (entry.event_type, entry.kind) == (EventType.SEVERITY_CHANGED, EntryKind.SEVERITY)
    assert entry.data == {"from": "P1", "to": "P0", "reason": "all down"}
    assert "<strong>P0</strong>" in entry.body_html

    with django_capture_on_commit_callbacks(execute=True):
        timeline.record(entry)
    assert entry.pk is not None
    assert [(e.incident_id, e.entry_id, e.event_type, e.by) for e in recorded] == [
        (incident.pk, entry.pk, "severity_changed", responder)
    ]


def test_record_all_inserts_in_one_statement_and_announces_every_row(
    responder, recorded, django_capture_on_commit_callbacks, django_assert_num_queries
):
    incident = declare(by=responder)
    entries = [timeline.note(incident, body=f"note {i}", by=responder) for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(1):
        saved = timeline.record_all(entries)
    assert all(entry.pk for entry in saved)
    assert [e.entry_id for e in recorded] == [entry.pk for entry in saved]


def test_declaring_writes_typed_entries_with_their_parameters(responder):
    incident = declare(by=responder, level="P1")
    assert types(incident)[:2] == ["declared", "role_assigned"]
    declared, assigned = incident.timeline.order_by("id")[:2]
    assert declared.data == {"severity": "P1"} and declared.is_key_event
    assert assigned.data == {"role": Role.INCIDENT_COMMANDER, "holder_id": responder.pk, "previous_holder_id": None}


def test_incident_services_type_every_entry(responder):
    incident = declare(by=responder, level="P2")
    other = ResponderFactory()
    assign_role(incident=incident, role=Role.INCIDENT_COMMANDER, holder=other, by=responder)
    relieve_role(incident=incident, role=Role.INCIDENT_COMMANDER, by=responder)
    acknowledge_incident(incident=incident, by=responder)
    add_timeline_entry(incident=incident, by=responder, body="restarted", kind=EntryKind.ACTION)
    add_timeline_entry(incident=incident, by=responder, body="looks better")
    item = incident.checklist_items.first()
    tick_checklist_item(item=item, by=responder)
    post_status_update(incident=incident, kind="internal", status="investigating", by=responder, what_we_know="errors")
    change_status(incident=incident, to=Status.IDENTIFIED, by=responder, note="found it")

    written = types(incident)
    for expected in [
        "role_assigned",
        "role_relieved",
        "acknowledged",
        "action_taken",
        "note",
        "checklist_ticked",
        "internal_update",
        "status_changed",
    ]:
        assert expected in written
    reassigned = incident.timeline.filter(event_type=EventType.ROLE_ASSIGNED).latest("id")
    assert reassigned.data["holder_id"] == other.pk and reassigned.data["previous_holder_id"] == responder.pk
    ticked = incident.timeline.get(event_type=EventType.CHECKLIST_TICKED, data__item_id=item.pk)
    assert ticked.data == {"item_id": item.pk, "phase": item.phase, "checked": True}
    status = incident.timeline.get(event_type=EventType.STATUS_CHANGED)
    assert status.data == {"from": "investigating", "to": "identified", "note": "found it"}
    assert "found it" in status.body


def test_paging_writes_paged_then_escalated_with_the_level_in_data(responder):
    team = paged_team()
    with time_machine.travel(MONDAY_10, tick=False) as clock:
        incident = declare(by=responder, level="P1", services=[team.service])
        clock.move_to(MONDAY_10 + timedelta(minutes=31))
        run_escalation_tick()
    started = incident.timeline.get(event_type=EventType.PAGING_STARTED)
    assert started.data["team_id"] == team.team.pk and started.data["severity"] == "P1"
    first = incident.timeline.get(event_type=EventType.PAGED)
    assert first.data["level"] == 1 and first.data["page_id"] == started.data["page_id"]
    assert first.kind == EntryKind.SYSTEM and first.body.startswith("Paged level 1")
    second = incident.timeline.get(event_type=EventType.ESCALATED)
    assert second.data["level"] == 2 and second.body.startswith("Paged level 2")


def test_no_module_writes_timeline_rows_except_through_the_builders():
    """TimelineEntry rows are constructed only in incidents/timeline/; everything else calls its builders."""
    offenders = []
    for folder in ("incidents", "oncall", "postmortems", "incidentportal"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts or path.parent == ROOT / "incidents" / "timeline":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                text = ast.unparse(node.func)
                if text == "TimelineEntry" or text.startswith("TimelineEntry.objects.") and text.endswith("create"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {text}")
    assert offenders == []


def test_the_timeline_filter_shows_one_event_type_or_a_whole_kind(client, responder):
    incident = declare(by=responder, level="P2")
    other = ResponderFactory()
    assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=other, by=responder)
    relieve_role(incident=incident, role=Role.TECHNICAL_LEAD, by=responder)
    client.force_login(responder)
    base = incident.get_absolute_url() + "?partial=timeline&kind="
    relieved = client.get(base + "role_relieved", HTTP_HX_REQUEST="true").content.decode()
    assert "stepped down as Technical Lead" in relieved and "is now" not in relieved
    assert '<option value="role_relieved" selected>' in relieved
    roles = client.get(base + "role", HTTP_HX_REQUEST="true").content.decode()
    assert "stepped down as Technical Lead" in roles and "is now <strong>Technical Lead</strong>" in roles
    assert 'data-event-type="role_assigned"' in roles and "Incident declared" not in roles


def test_the_api_exposes_event_type_and_data(responder):
    incident = declare(by=responder, level="P2")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(responder)[1]}")
    results = client.get(f"/api/v1/incidents/{incident.reference}/timeline/").json()["results"]
    assert results[0]["event_type"] == "declared" and results[0]["data"] == {"severity": "P2"}
    assert results[0]["kind"] == "system"
    posted = client.post(f"/api/v1/incidents/{incident.reference}/timeline/", {"body": "hi"}, format="json").json()
    assert (posted["event_type"], posted["data"]) == ("note", {})
    schema = client.get("/api/schema/", {"format": "json"}).json()
    entry = schema["components"]["schemas"]["TimelineEntry"]["properties"]
    assert {"event_type", "data", "kind"} <= set(entry)
    assert "paging_started" in schema["components"]["schemas"]["EventTypeEnum"]["enum"]


def test_the_post_mortem_timeline_editor_names_each_entrys_type(client, responder):
    incident = declare(by=responder, level="P2")
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    postmortem = incident.postmortem
    client.force_login(responder)
    html = client.get(f"/postmortems/{postmortem.pk}/timeline/").content.decode()
    assert '<span class="chip event-type">Post-mortem drafted</span>' in html
    assert '<span class="chip event-type">Status changed</span>' in html


def test_the_data_migration_types_rows_written_before_event_types(responder):
    incident = declare(by=responder)
    now = timezone.now()
    legacy = {
        ("system", "Incident declared as **P1** by Ann."): "declared",
        ("status", "Status changed from Investigating to **Identified**."): "status_changed",
        ("role", "Ann stepped down as Scribe."): "role_relieved",
        ("role", "Ann is now **Scribe**."): "role_assigned",
        ("action", "Acknowledged by Ann."): "acknowledged",
        ("action", "Restarted the workers."): "action_taken",
        ("update", "Internal update posted: **Investigating**"): "internal_update",
        ("update", "Status page update posted: **Investigating** - Slow"): "status_page_update",
        ("system", "Paged level 1 (On-call): Ann (Email)."): "paged",
        ("system", "Paged level 1 (On-call), repeat 2 of 3: Ann (Email)."): "escalated",
        ("system", "Paged level 2 (Lead): Bob (Email)."): "escalated",
        ("system", "Bob joined the response."): "responder_added",
        ("system", "Post-mortem moved from Draft to **Published**."): "postmortem_status_changed",
        ("system", "Something nobody recognises."): "system",
        ("note", "A note."): "note",
        ("alert", "From **Grafana**:\n\n- Alert"): "alert_attached",
    }
    rows = TimelineEntry.objects.bulk_create(
        TimelineEntry(incident=incident, occurred_at=now, kind=kind, body=body, body_html="", event_type="note")
        for kind, body in legacy
    )
    migration = importlib.import_module("incidents.migrations.0005_type_existing_timeline_entries")
    migration.type_entries(apps, None)
    typed = dict(TimelineEntry.objects.filter(pk__in=[r.pk for r in rows]).values_list("body", "event_type"))
    assert {body: typed[body] for _, body in legacy} == {body: expected for (_, body), expected in legacy.items()}

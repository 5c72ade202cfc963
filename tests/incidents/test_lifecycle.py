"""The incident lifecycle events: what incidents.services publishes, and that paging and post-mortems react through
their subscriptions (incidents imports neither; `lint-imports` checks that and the other contracts)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction

from incidentportal.celery import app as celery_app
from incidents import lifecycle
from incidents.models import Role, Status
from incidents.services.checklist import tick_checklist_item
from incidents.services.status import acknowledge_incident, change_severity, change_status
from oncall.paging import subscribers as paging_subscribers
from oncall.paging.models import Page
from postmortems.models import PostMortem
from tests.factories import ResponderFactory, declare, severity
from tests.paging.factories import paged_team

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def published():
    """Every incident lifecycle event published (timeline entries aside), as an in-transaction subscriber sees them
    in order."""
    seen = []

    def handler(event):
        if not isinstance(event, lifecycle.TimelineRecorded):
            seen.append(event)

    lifecycle.subscribe(lifecycle.LifecycleEvent, handler, in_transaction=True)
    yield seen
    lifecycle.unsubscribe(lifecycle.LifecycleEvent, handler)


def names(events) -> list[str]:
    return [type(event).__name__ for event in events]


def test_the_lifecycle_of_an_incident_is_published_as_typed_events(responder, published):
    incident = declare(by=responder, level="P2")
    assert names(published) == ["RoleAssigned", "IncidentDeclared"]  # the declarer becomes Incident Commander
    assigned, declared = published
    assert (assigned.role, assigned.holder_id, assigned.incident_id) == (
        Role.INCIDENT_COMMANDER,
        responder.pk,
        incident.pk,
    )
    assert declared.by == responder

    published.clear()
    change_severity(incident=incident, severity=severity("P1"), by=responder, reason="worse")
    change_severity(incident=incident, severity=severity("P3"), by=responder, reason="better")
    raised, lowered = published
    assert (raised.old_level, raised.new_level, raised.raised) == ("P2", "P1", True)
    assert (lowered.new_level, lowered.raised) == ("P3", False)

    published.clear()
    acknowledge_incident(incident=incident, by=responder)
    acknowledge_incident(incident=incident, by=ResponderFactory())
    assert [(type(e).__name__, e.first) for e in published] == [
        ("IncidentAcknowledged", True),
        ("IncidentAcknowledged", False),
    ]

    published.clear()
    change_status(incident=incident, to=Status.MONITORING, by=responder)
    change_status(incident=incident, to=Status.INVESTIGATING, by=responder)
    assert names(published) == ["StatusChanged", "StatusChanged"]  # back from Monitoring is not a re-open
    assert (published[1].old_status, published[1].new_status) == ("monitoring", "investigating")

    published.clear()
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    change_status(incident=incident, to=Status.INVESTIGATING, by=responder)
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    for item in incident.checklist_items.filter(phase="closure"):
        tick_checklist_item(item=item, by=responder)
    change_status(incident=incident, to=Status.CLOSED, by=responder)
    assert names(published) == [
        "StatusChanged",
        "IncidentResolved",
        "StatusChanged",
        "IncidentReopened",
        "StatusChanged",
        "IncidentResolved",
        "StatusChanged",
        "IncidentClosed",
    ]


def test_a_failing_in_transaction_subscriber_rolls_the_change_back(responder):
    incident = declare(by=responder, level="P2")

    def refuse(event):
        raise RuntimeError("the page could not be written")

    lifecycle.subscribe(lifecycle.IncidentResolved, refuse, in_transaction=True)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            change_status(incident=incident, to=Status.RESOLVED, by=responder)
    finally:
        lifecycle.unsubscribe(lifecycle.IncidentResolved, refuse)
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    assert not PostMortem.objects.filter(incident=incident).exists()


def test_paging_and_post_mortems_react_through_their_subscriptions(responder):
    team = paged_team()
    incident = declare(by=responder, level="P1", services=[team.service])
    assert Page.objects.filter(incident=incident, state=Page.State.ACTIVE).exists()
    change_status(incident=incident, to=Status.RESOLVED, by=responder)
    assert not Page.objects.filter(incident=incident, state__in=Page.OPEN_STATES).exists()
    assert PostMortem.objects.filter(incident=incident).exists()

    # Without paging's subscription, declaring pages nobody: the reaction lives in oncall.paging, not incidents.
    lifecycle.unsubscribe(lifecycle.IncidentDeclared, paging_subscribers.page_on_declared)
    try:
        quiet = declare(by=responder, level="P1", services=[team.service])
    finally:
        paging_subscribers.subscribe()
    assert not Page.objects.filter(incident=quiet).exists()


def test_every_task_a_service_enqueues_by_name_is_registered():
    """Services name the tasks that call them (registered_task("app.tasks.name")) instead of importing tasks
    modules; a typo would only show when the service runs, so every name used is checked here."""
    used = set()
    for folder in ("incidents", "oncall", "postmortems"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "registered_task":
                    used.add(node.args[0].value)
    assert used and used <= set(celery_app.tasks)


def test_the_import_contracts_hold():
    """pyproject.toml's import-linter contracts (layers, incidents independent of oncall and postmortems, no
    imports of another app's private names), as `make lint` runs them."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout

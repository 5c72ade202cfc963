"""The incident header says what the timeline says: an acknowledgement after the acknowledge target shows as
missed (red), in the facts and in the paging panel; "Claim" is offered only for roles nobody holds."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import Role
from incidents.services.roles import assign_role
from incidents.services.status import acknowledge_incident
from tests.factories import ResponderFactory, declare

pytestmark = pytest.mark.django_db


def header(client, incident) -> str:
    body = " ".join(client.get(incident.get_absolute_url()).content.decode().split())
    return body[body.index('id="incident-header"') : body.index("</section>", body.index('id="incident-header"'))]


def test_late_acknowledgement_shows_as_missed_in_the_header(client, responder, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    incident = declare(by=responder, level="P1")
    client.force_login(responder)
    assert 'class="countdown warn">not yet</span>' in header(client, incident)
    time_machine.shift(timedelta(minutes=5, seconds=30))
    assert "not yet (target 5 min missed)" in header(client, incident)
    acknowledge_incident(incident=incident, by=responder)

    html = header(client, incident)
    assert '<span class="countdown bad">5m 30s (target 5 min missed)</span>' in html
    assert "Acknowledged late" in html and "the acknowledge target was missed" in html
    assert "acknowledged in" not in html and "ack-done" not in html
    # The response target (1 h for P1) was met, and says so in its own words.
    assert '<span class="countdown ok">met (within 1 h)</span>' in html


def test_prompt_acknowledgement_is_green(client, responder, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    incident = declare(by=responder, level="P1")
    time_machine.shift(timedelta(minutes=2))
    acknowledge_incident(incident=incident, by=responder)
    client.force_login(responder)
    html = header(client, incident)
    assert '<span class="countdown ok">2m 00s (within 5 min)</span>' in html
    assert "ack-done" in html and "Acknowledged late" not in html


def test_claim_is_offered_only_for_unheld_roles(client, responder):
    incident = declare(by=responder)  # responder is Incident Commander
    other = ResponderFactory()
    assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=other, by=responder)
    client.force_login(ResponderFactory())
    body = client.get(incident.get_absolute_url()).content.decode()
    roles = body[body.index('id="card-roles"') :]
    roles = roles[: roles.index("</ul>")]
    items = {item.split('class="role-name">')[1].split("<")[0]: item for item in roles.split("<li>")[1:]}
    assert "Claim" not in items["Incident Commander"] and "Claim" not in items["Technical Lead"]
    assert "Claim" in items["Communications Lead"] and "Claim" in items["Scribe"]

"""Adding responders to an incident: page another team through its escalation policy, or one person by their
notification rules, with a message; from the incident page (htmx and plain) and the API. They show in the
paging panel with their state, stop with the incident's acknowledgement and survive a severity raise."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from incidents.errors import DomainError
from incidents.services.status import acknowledge_incident, change_severity
from oncall.paging import delivery
from oncall.paging.models import Notification, Page
from oncall.paging.services.engine import run_escalation_tick
from oncall.paging.services.responders import add_responders
from tests.factories import ViewerFactory, declare
from tests.oncall.factories import PersonFactory
from tests.paging.factories import paged_team, with_methods

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


@pytest.fixture
def incident_and_teams(clock, responder):
    platform = paged_team(name="Platform")
    database = paged_team(name="Database")
    incident = declare(by=responder, level="P1", services=[platform.service])
    return incident, platform, database


def added_pages(incident):
    return list(Page.objects.filter(incident=incident, is_added=True))


def test_paging_another_team_fires_its_first_level_with_the_message(incident_and_teams, responder, mailoutbox):
    incident, _platform, database = incident_and_teams
    page = add_responders(incident=incident, by=responder, team=database.team, message="Replica lag 40 s, need a DBA")
    assert (page.is_added, page.team, page.state, page.escalation_level) == (True, database.team, "active", 0)
    rows = Notification.objects.filter(page=page)
    assert {row.person for row in rows} == {database.oncall}
    entry = incident.timeline.filter(body__contains="paged Database").get()
    assert "Replica lag 40 s, need a DBA" in entry.body
    delivery.deliver_due_notifications()
    mail = next(m for m in mailoutbox if database.oncall.email in m.to)
    assert "Replica lag 40 s, need a DBA" in mail.body and incident.reference in mail.subject
    # The incident's own paging run is untouched.
    assert Page.objects.get(incident=incident, is_added=False).state == Page.State.ACTIVE


def test_paging_a_person_uses_their_rules(incident_and_teams, responder):
    incident, *_ = incident_and_teams
    expert = with_methods(PersonFactory(name="Erin Expert"), "email", "voice", delays={"voice": 3})
    page = add_responders(incident=incident, by=responder, person=expert, message="Cache expert wanted")
    rows = {row.channel: row for row in Notification.objects.filter(page=page)}
    assert rows["email"].scheduled_for == MONDAY_10
    assert rows["voice"].scheduled_for == MONDAY_10 + timedelta(minutes=3)
    assert page.escalate_at is None and page.target_label == "Erin Expert"


def test_bad_requests_are_clear_errors_and_change_nothing(incident_and_teams, responder):
    incident, platform, database = incident_and_teams
    expert = with_methods(PersonFactory(), "email")
    add_responders(incident=incident, by=responder, team=database.team)
    cases = [
        ({"team": database.team}, "being paged for this incident already"),
        ({}, "Choose a team or a person"),
        ({"team": platform.team, "person": expert}, "Choose a team or a person"),
        ({"person": expert, "message": "x" * 1001}, "under 1,000 characters"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DomainError, match=message):
            add_responders(incident=incident, by=responder, **kwargs)
    with pytest.raises(DomainError, match="responder role"):
        add_responders(incident=incident, by=ViewerFactory(), person=expert)
    assert len(added_pages(incident)) == 1


def test_acknowledging_the_incident_stops_added_pages_and_a_severity_raise_keeps_them(incident_and_teams, responder):
    incident, _platform, database = incident_and_teams
    page = add_responders(incident=incident, by=responder, team=database.team)
    change_severity(incident=incident, severity=_p0(), by=responder, reason="worse")
    page.refresh_from_db()
    assert page.state == Page.State.ACTIVE
    acknowledge_incident(incident=incident, by=responder)
    page.refresh_from_db()
    assert page.state == Page.State.ACKNOWLEDGED
    assert set(Notification.objects.filter(page=page).values_list("status", flat=True)) == {"cancelled"}


def _p0():
    from incidents.models import SeverityPolicy

    return SeverityPolicy.objects.get(level="P0")


def test_an_added_team_that_never_acknowledges_alerts_no_hotline(incident_and_teams, responder, clock, settings):
    settings.PAGING_REPEAT_POLICY_TIMES = 1
    incident, _platform, database = incident_and_teams
    page = add_responders(incident=incident, by=responder, team=database.team)
    Page.objects.filter(incident=incident, is_added=False).update(escalate_at=None)  # watch only the added page
    for minutes in (30, 45, 75, 200):
        clock.move_to(MONDAY_10 + timedelta(minutes=minutes))
        run_escalation_tick()
    page.refresh_from_db()
    assert page.state == Page.State.EXHAUSTED and page.hotlines_alerted_at is None
    assert not Notification.objects.filter(page=page, purpose=Notification.Purpose.HOTLINE).exists()
    assert incident.timeline.filter(body="Nobody from Database acknowledged the added-responder page.").count() == 1


def test_add_responders_from_the_incident_page(client, incident_and_teams, responder):
    incident, _platform, database = incident_and_teams
    client.force_login(responder)
    html = client.get(incident.get_absolute_url()).content.decode()
    url = reverse("paging:add_responders", args=[incident.reference])
    assert url in html and "Add responders" in html
    form = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 'name="team"' in form and "Database" in form
    response = client.post(url, {"team": database.team.pk, "message": "Replica lag"}, headers={"HX-Request": "true"})
    panel = response.content.decode()
    assert response.status_code == 200 and "Added responders" in panel and "Database" in panel
    assert "Replica lag" in panel and "paging level 1" in panel
    again = client.post(url, {"team": database.team.pk}, headers={"HX-Request": "true"})
    assert again.status_code == 422 and "being paged for this incident already" in again.content.decode()
    neither = client.post(url, {"message": "hi"})
    assert neither.status_code == 302 and len(added_pages(incident)) == 1


def test_viewer_cannot_add_responders(client, incident_and_teams):
    incident, _platform, database = incident_and_teams
    client.force_login(ViewerFactory())
    url = reverse("paging:add_responders", args=[incident.reference])
    assert client.post(url, {"team": database.team.pk}).status_code == 403
    assert not added_pages(incident)


def test_add_responders_through_the_api(client, incident_and_teams, responder):
    incident, _platform, database = incident_and_teams
    expert = with_methods(PersonFactory(name="Erin Expert"), "email")
    client.force_login(responder)
    url = reverse("incident-responders", args=[incident.reference])
    response = client.post(url, {"team": database.team.slug, "message": "DBA please"}, content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    assert (body["team"], body["state"], body["escalation_level"], body["message"]) == (
        database.team.slug,
        "active",
        1,
        "DBA please",
    )
    assert body["notifications"] and body["notifications"][0]["state"] == "Pending"
    response = client.post(url, {"person": expert.pk}, content_type="application/json")
    assert response.status_code == 201 and response.json()["target"] == "Erin Expert"
    listed = client.get(url).json()
    assert [item["target"] for item in listed] == ["Database", "Erin Expert"]
    # Bad input names the field; an unknown incident is 404.
    bad = client.post(url, {"team": "no-such-team"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["field"] == "team"
    both = client.post(url, {"team": database.team.slug, "person": expert.pk}, content_type="application/json")
    assert both.status_code == 400
    again = client.post(url, {"person": expert.pk}, content_type="application/json")
    assert again.status_code == 400 and "already" in again.json()["detail"]
    missing = client.post(reverse("incident-responders", args=["INC-9999"]), {}, content_type="application/json")
    assert missing.status_code == 404
    assert len(added_pages(incident)) == 2

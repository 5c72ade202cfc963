"""The incident page shows the declared summary, and its Incident Commander edits title, summary, impact and
services there (one timeline entry says what changed)."""

import pytest
from django.urls import reverse

from incidents.models import TimelineEntry
from tests.factories import ResponderFactory, ServiceFactory, declare

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def edit_url(incident):
    return reverse("incidents:edit_details", kwargs={"reference": incident.reference})


def test_summary_is_shown_on_the_incident_page(client, responder):
    incident = declare(by=responder, summary="Checkout returns 502 for EU customers since the 14:00 deploy.")
    client.force_login(ResponderFactory())
    body = client.get(incident.get_absolute_url()).content.decode()
    assert "<strong>Summary:</strong> Checkout returns 502 for EU customers since the 14:00 deploy." in body


def test_incident_commander_edits_details_with_one_timeline_entry(client, responder):
    api, web = ServiceFactory(name="Backend API"), ServiceFactory(name="Web App")
    incident = declare(by=responder, title="API slow", services=[api])
    client.force_login(responder)
    assert 'id="card-details"' in client.get(incident.get_absolute_url()).content.decode()
    before = TimelineEntry.objects.filter(incident=incident).count()

    response = client.post(
        edit_url(incident),
        {
            "title": "API slow for EU customers",
            "summary": "Latency above 5 s.",
            "impact": "30% of requests",
            "services": [api.pk, web.pk],
        },
        **HTMX,
    )
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.title == "API slow for EU customers" and incident.summary == "Latency above 5 s."
    assert incident.impact == "30% of requests"
    assert sorted(s.name for s in incident.services.all()) == ["Backend API", "Web App"]
    entries = list(TimelineEntry.objects.filter(incident=incident).order_by("id"))[before:]
    assert len(entries) == 1
    assert "title" in entries[0].body.lower() and "Web App" in entries[0].body

    body = client.get(incident.get_absolute_url()).content.decode()
    assert "API slow for EU customers" in body and "<strong>Summary:</strong> Latency above 5 s." in body


def test_empty_title_is_a_form_error(client, responder):
    incident = declare(by=responder)
    client.force_login(responder)
    response = client.post(edit_url(incident), {"title": "  ", "summary": "x"}, **HTMX)
    assert response.status_code == 422
    assert "This field is required." in response.content.decode() or "short title" in response.content.decode()
    incident.refresh_from_db()
    assert incident.title == "API slow response times"


def test_only_the_incident_commander_or_a_manager_edits_details(client, responder, manager):
    incident = declare(by=responder)
    other = ResponderFactory()
    client.force_login(other)
    assert 'id="card-details"' not in client.get(incident.get_absolute_url()).content.decode()
    response = client.post(edit_url(incident), {"title": "Hijacked"})
    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.title == "API slow response times"
    client.force_login(manager)
    assert client.post(edit_url(incident), {"title": "Renamed by a manager"}).status_code == 302
    incident.refresh_from_db()
    assert incident.title == "Renamed by a manager"

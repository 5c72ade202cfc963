from datetime import timedelta

import pytest
from django.utils import timezone

from postmortems.services.action_items import add_action_item
from tests.factories import ResponderFactory, ViewerFactory
from tests.postmortems.factories import postmortem_for, resolved_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def item(responder):
    postmortem = postmortem_for(resolved_incident(by=responder, title="Checkout API slow"))
    return add_action_item(
        postmortem=postmortem,
        by=responder,
        title="Add index check",
        owner=responder,
        due_date=timezone.localdate() + timedelta(days=3),
        kind="detect",
    )


def test_postmortem_list_and_detail(client, responder, item):
    client.force_login(ViewerFactory())
    listing = client.get("/api/v1/postmortems/?status=draft").json()
    assert [row["incident"] for row in listing["results"]] == [item.incident.reference]
    detail = client.get(f"/api/v1/postmortems/{item.postmortem_id}/").json()
    assert detail["title"] == "Post-mortem: Checkout API slow"
    assert "- Duration: 2 hours 15 minutes" in detail["summary"]
    assert [line["text"] for line in detail["timeline"]][-1] == "Status changed from Monitoring to **Resolved**."
    assert detail["action_items"][0]["type"] == "detect"
    assert client.get("/api/v1/postmortems/?status=published").json()["results"] == []


def test_restricted_postmortems_and_items_are_hidden(client, responder):
    incident = resolved_incident(by=responder, is_restricted=True)
    postmortem = postmortem_for(incident)
    client.force_login(ResponderFactory())
    assert client.get("/api/v1/postmortems/").json()["results"] == []
    assert client.get(f"/api/v1/postmortems/{postmortem.pk}/").status_code == 404


def test_my_and_overdue_action_items(client, responder, item):
    client.force_login(responder)
    assert [row["id"] for row in client.get("/api/v1/action-items/?mine=1").json()["results"]] == [item.pk]
    assert client.get("/api/v1/action-items/?overdue=1").json()["results"] == []
    client.force_login(ResponderFactory())
    assert client.get("/api/v1/action-items/?mine=1").json()["results"] == []


def test_owner_sets_status_and_others_get_clear_errors(client, responder, item):
    client.force_login(responder)
    url = f"/api/v1/action-items/{item.pk}/status/"
    response = client.post(url, {"status": "done"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["status"] == "done"
    response = client.post(url, {"status": "finished"}, content_type="application/json")
    assert response.status_code == 400 and "status" in response.json()["errors"]
    client.force_login(ViewerFactory())
    assert client.post(url, {"status": "open"}, content_type="application/json").status_code == 403
    client.logout()
    assert client.post(url, {"status": "open"}, content_type="application/json").status_code in (401, 403)

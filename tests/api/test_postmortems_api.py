"""Post-mortem API (read): visible exactly when the incident is."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from postmortems.services.action_items import add_action_item
from tests.factories import ResponderFactory, SecurityFactory, ViewerFactory
from tests.postmortems.factories import postmortem_for, resolved_incident

from .factories import make_token

pytestmark = pytest.mark.django_db


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)[1]}")
    return client


def test_postmortem_and_action_items_are_readable(responder):
    incident = resolved_incident(by=responder)
    postmortem = postmortem_for(incident)
    add_action_item(
        postmortem=postmortem,
        by=responder,
        title="Add connection pool alert",
        owner=responder,
        due_date=timezone.localdate() + timedelta(days=7),
    )
    client = api(ViewerFactory())
    listed = client.get("/api/v1/postmortems/").json()["results"]
    assert [p["incident"] for p in listed] == [incident.reference]
    detail = client.get(f"/api/v1/postmortems/{postmortem.pk}/").json()
    assert detail["status"] == "draft" and detail["action_items"][0]["title"] == "Add connection pool alert"
    items = client.get("/api/v1/action-items/", {"owner": responder.username, "open": "true"}).json()["results"]
    assert [i["title"] for i in items] == ["Add connection pool alert"]
    assert client.get("/api/v1/action-items/", {"overdue": "true"}).json()["results"] == []
    assert client.post("/api/v1/action-items/", {}, format="json").status_code == 403


def test_restricted_incidents_postmortem_is_404_for_outsiders():
    security = SecurityFactory()
    incident = resolved_incident(by=security, is_restricted=True)
    postmortem = postmortem_for(incident)
    outsider = api(ResponderFactory())
    assert outsider.get(f"/api/v1/postmortems/{postmortem.pk}/").status_code == 404
    assert outsider.get("/api/v1/postmortems/").json()["results"] == []
    assert api(security).get(f"/api/v1/postmortems/{postmortem.pk}/").status_code == 200


def test_unknown_api_path_is_json_404(viewer):
    response = api(viewer).get("/api/v1/no-such-thing/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"

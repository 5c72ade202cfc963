"""Permission sweep: every API endpoint as anonymous, viewer, responder and manager."""

import pytest
from rest_framework.test import APIClient

from tests.factories import ManagerFactory, ResponderFactory, ServiceFactory, ViewerFactory, declare

from .factories import make_token

pytestmark = pytest.mark.django_db

READS = [
    "/api/v1/incidents/",
    "/api/v1/incidents/{ref}/",
    "/api/v1/incidents/{ref}/timeline/",
    "/api/v1/incidents/{ref}/updates/",
    "/api/v1/incidents/{ref}/checklist/",
    "/api/v1/incidents/{ref}/alerts/",
    "/api/v1/incidents/{ref}/recent-changes/",
    "/api/v1/services/",
    "/api/v1/services/{service}/",
    "/api/v1/severities/",
    "/api/v1/severities/P1/",
    "/api/v1/alert-groups/",
    "/api/v1/tokens/",
]

# Writes on incidents: responders act, viewers may not.
WRITES = [
    ("/api/v1/incidents/", {"title": "From the sweep", "severity": "P3"}, 201),
    ("/api/v1/incidents/{ref}/status/", {"status": "identified"}, 200),
    ("/api/v1/incidents/{ref}/severity/", {"severity": "P0", "reason": "worse"}, 200),
    ("/api/v1/incidents/{ref}/roles/", {"role": "scribe", "holder": "{other}"}, 200),
    ("/api/v1/incidents/{ref}/acknowledge/", {}, 200),
    ("/api/v1/incidents/{ref}/timeline/", {"body": "note"}, 201),
    ("/api/v1/incidents/{ref}/updates/", {"kind": "internal", "status": "investigating", "what_we_know": "x"}, 201),
    ("/api/v1/incidents/{ref}/checklist/{item}/", {"checked": True}, 200),
]

ROLES = {
    "anonymous": None,
    "viewer": ViewerFactory,
    "responder": ResponderFactory,
    "manager": ManagerFactory,
}


@pytest.fixture
def world():
    service = ServiceFactory(slug="sweep-service")
    incident = declare(by=ManagerFactory(), level="P2")
    other = ResponderFactory()
    return {
        "ref": incident.reference,
        "service": service.slug,
        "item": incident.checklist_items.first().pk,
        "other": other.username,
    }


def _client(role):
    client = APIClient()
    if ROLES[role] is not None:
        _, key = make_token(ROLES[role]())
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _fill(value, world):
    if isinstance(value, str):
        return value.format(**world)
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("path", READS)
def test_reads(role, path, world):
    response = _client(role).get(_fill(path, world))
    if role == "anonymous":
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"
    else:
        assert response.status_code == 200, response.content


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize(("path", "body", "success"), WRITES)
def test_writes(role, path, body, success, world):
    response = _client(role).post(_fill(path, world), _fill(body, world), format="json")
    expected = {"anonymous": 401, "viewer": 403}.get(role, success)
    assert response.status_code == expected, response.content
    if expected >= 400:
        assert response.json()["detail"]


@pytest.mark.parametrize("role", ["viewer", "responder", "manager"])
def test_every_signed_in_user_manages_their_own_tokens(role):
    client = APIClient()  # a browser session: tokens are never minted by tokens
    client.force_login(ROLES[role]())
    created = client.post("/api/v1/tokens/", {"name": "mine"}, format="json")
    assert created.status_code == 201
    assert client.delete(f"/api/v1/tokens/{created.json()['id']}/").status_code == 204


def test_anonymous_cannot_create_tokens():
    assert APIClient().post("/api/v1/tokens/", {"name": "x"}, format="json").status_code == 401


def test_session_writes_need_csrf(responder, world):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(responder)
    response = client.post(f"/api/v1/incidents/{world['ref']}/acknowledge/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]

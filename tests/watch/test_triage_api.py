"""POST /api/v1/incidents/<reference>/triage/: the "Run triage" button for API clients (same service, same permission
rule, the results entry on the timeline names the caller), against a real health endpoint on loopback."""

import pytest
from rest_framework.test import APIClient

from incidentportal.celery import app as celery_app
from incidents.models import EventType, TimelineEntry
from incidents.watch.models import Probe, ProbeKind
from tests.api.factories import make_token
from tests.factories import ResponderFactory, ServiceFactory, declare

from .servers import HealthHandler, http_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def health():
    with http_server(HealthHandler) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def eager():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)[1]}")
    return client


def test_triage_from_the_api_runs_every_probe_and_names_the_caller(
    health, responder, eager, django_capture_on_commit_callbacks
):
    checkout = ServiceFactory(name="Checkout", slug="checkout")
    Probe.objects.create(service=checkout, name="Health endpoint", kind=ProbeKind.HTTP, url=f"{health}/broken")
    Probe.objects.create(
        service=checkout, name="Port", kind=ProbeKind.TCP, host="127.0.0.1", port=health.rsplit(":")[-1]
    )
    incident = declare(by=responder, services=[checkout])
    last = TimelineEntry.objects.filter(incident=incident).order_by("-id").first().id
    with django_capture_on_commit_callbacks(execute=True):
        response = api(responder).post(f"/api/v1/incidents/{incident.reference.lower()}/triage/")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["started"] is True and body["timeline_after"] == last
    assert body["probes"] == [
        {"service": "checkout", "name": "Health endpoint", "kind": "http"},
        {"service": "checkout", "name": "Port", "kind": "tcp"},
    ]
    timeline = api(responder).get(f"/api/v1/incidents/{incident.reference}/timeline/", {"after": last}).json()
    [entry] = [e for e in timeline["results"] if e["event_type"] == EventType.TRIAGE_RESULTS]
    assert "Triage of **Checkout**: 1 of 2 failing." in entry["body"]
    assert "HTTP 500, expected 200" in entry["body"] and "connected in" in entry["body"]
    assert entry["author"]["username"] == responder.username  # the timeline (and the evidence bundle) names the caller


def test_an_incident_whose_services_have_no_probes_says_so_and_queues_nothing(
    responder, django_capture_on_commit_callbacks
):
    incident = declare(by=responder, services=[ServiceFactory(slug="docs")])
    with django_capture_on_commit_callbacks() as callbacks:
        response = api(responder).post(f"/api/v1/incidents/{incident.reference}/triage/")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "started": False,
        "detail": "The affected services have no triage probes.",
        "probes": [],
        "timeline_after": body["timeline_after"],
    }
    assert callbacks == []
    assert not TimelineEntry.objects.filter(incident=incident, event_type=EventType.TRIAGE_RESULTS).exists()


def test_a_viewer_is_refused_and_nothing_runs(health, responder, viewer, django_capture_on_commit_callbacks):
    service = ServiceFactory(slug="checkout")
    Probe.objects.create(service=service, name="Health", kind=ProbeKind.HTTP, url=f"{health}/healthz")
    incident = declare(by=responder, services=[service])
    with django_capture_on_commit_callbacks() as callbacks:
        response = api(viewer).post(f"/api/v1/incidents/{incident.reference}/triage/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "responder role" in response.json()["detail"]
    assert callbacks == []


def test_unknown_restricted_and_malformed_references_are_404_and_get_is_405(responder):
    other = declare(by=ResponderFactory(), services=[], is_restricted=True)
    client = api(responder)
    assert client.post(f"/api/v1/incidents/{other.reference}/triage/").status_code == 404
    assert client.post("/api/v1/incidents/INC-99999/triage/").status_code == 404
    assert client.post("/api/v1/incidents/nonsense/triage/").status_code == 404
    assert client.get(f"/api/v1/incidents/{other.reference}/triage/").status_code in (404, 405)
    mine = declare(by=responder, services=[])
    assert client.get(f"/api/v1/incidents/{mine.reference}/triage/").status_code == 405
    assert APIClient().post(f"/api/v1/incidents/{mine.reference}/triage/").status_code == 401


def test_the_schema_documents_the_triage_operation(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/incidents/{reference}/triage/"]["post"]
    assert {"200", "202", "403", "404"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == ["reference"]

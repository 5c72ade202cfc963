"""NUL characters (which PostgreSQL text refuses) get one answer everywhere (issue 17, finding 5): 400 naming the field
or parameter, 404 when they are in the path. Never a 500."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import ResponderFactory, ServiceFactory, declare

pytestmark = pytest.mark.django_db

NUL = "a\x00"


@pytest.fixture
def api(responder):
    client = APIClient()
    client.force_authenticate(responder)
    return client


@pytest.fixture
def incident(responder):
    return declare(by=responder, level="P2")


def _assert_400_naming(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == field and field in body["errors"]
    assert "NUL" in body["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("severity", NUL),
        ("services", [NUL]),
        ("incident_commander", NUL),
        ("runbook", NUL),
    ],
)
def test_declare_lookups_with_nul_are_400_naming_the_field(api, field, value):
    ServiceFactory(slug="checkout")
    body = {"title": "Checkout down", "severity": "P2", field: value}
    _assert_400_naming(api.post("/api/v1/incidents/", body, format="json"), field)


def test_role_holder_with_nul_is_400(api, incident):
    response = api.post(
        f"/api/v1/incidents/{incident.reference}/roles/", {"role": "scribe", "holder": NUL}, format="json"
    )
    _assert_400_naming(response, "holder")


def test_update_affected_services_with_nul_is_400(api, incident):
    response = api.post(
        f"/api/v1/incidents/{incident.reference}/updates/",
        {"kind": "internal", "status": "investigating", "what_we_know": "x", "affected_services": ["ok", NUL]},
        format="json",
    )
    _assert_400_naming(response, "affected_services")


def test_nested_nul_names_the_outer_field(api, incident):
    response = api.post(f"/api/v1/incidents/{incident.reference}/timeline/", {"body": "x\x00y"}, format="json")
    _assert_400_naming(response, "body")


@pytest.mark.parametrize("path", ["/api/v1/services/a%00/", "/api/v1/oncall/teams/a%00/"])
def test_nul_in_an_api_path_is_a_json_404(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_nul_in_a_query_filter_is_400_naming_it(api):
    _assert_400_naming(api.get("/api/v1/action-items/?status=a%00"), "status")


def test_nul_in_a_query_parameter_name_is_400(api):
    response = api.get("/api/v1/incidents/?a%00=1")
    assert response.status_code == 400


def test_anonymous_calendar_feed_with_nul_is_404():
    assert Client().get("/oncall/ics/a%00/mine.ics").status_code == 404


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status=a%00", "status"),
        ("q=%00", "q"),
        ("severity__level__exact=P1%00", "severity__level__exact"),
    ],
)
def test_admin_changelist_filters_with_nul_are_400_naming_the_parameter(client, query, name):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    response = client.get(f"/admin/incidents/incident/?{query}")
    assert response.status_code == 400
    assert name in response.content.decode()


def test_browser_form_choice_with_nul_is_400_naming_the_field(client):
    client.force_login(ResponderFactory())
    response = client.post("/incidents/declare/", {"title": "x", "severity": "P1\x00"})
    assert response.status_code == 400
    assert "severity" in response.content.decode()

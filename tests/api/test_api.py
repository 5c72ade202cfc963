"""The incidents API: behaviour through the service layer, the JSON error shape, tokens, restricted incidents."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.alerting.models import ApiToken
from incidents.models import ChecklistPhase, EntryKind, Incident, Role, Status
from tests.factories import ManagerFactory, ResponderFactory, SecurityFactory, ServiceFactory, declare

from .factories import make_token

pytestmark = pytest.mark.django_db


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, key = make_token(user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_declare_through_the_api_uses_the_service(responder):
    checkout = ServiceFactory(slug="checkout")
    response = api(responder).post(
        "/api/v1/incidents/",
        {"title": "Checkout failing", "severity": "P1", "services": ["checkout"], "detection_source": "user_report"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    incident = Incident.objects.get(number=body["number"])
    assert body["reference"] == incident.reference
    assert body["severity"] == "P1" and body["services"] == ["checkout"]
    assert list(incident.services.all()) == [checkout]
    assert incident.checklist_items.exists()  # the guide's checklists were copied in by declare_incident
    assert body["roles"][0]["role"] == Role.INCIDENT_COMMANDER
    assert body["roles"][0]["holder"]["username"] == responder.username


def test_declare_errors_name_the_field(responder):
    response = api(responder).post("/api/v1/incidents/", {"title": "", "severity": "P9"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"title", "severity"}
    assert body["field"] in {"title", "severity"} and body["detail"]


def test_future_detection_time_is_a_domain_error_400_naming_the_field(responder):
    future = (timezone.now() + timedelta(hours=2)).isoformat()
    response = api(responder).post(
        "/api/v1/incidents/", {"title": "x", "severity": "P2", "detected_at": future}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "detected_at"


def test_illegal_transition_is_409_with_the_reason(responder):
    incident = declare(by=responder)
    response = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/status/", {"status": "closed"}, format="json"
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "conflict" and body["field"] == "status"
    assert "cannot become Closed" in body["detail"]


def test_status_severity_role_acknowledge_flow(responder):
    incident = declare(by=responder, level="P2")
    other = ResponderFactory()
    client = api(responder)
    base = f"/api/v1/incidents/{incident.reference}"
    assert (
        client.post(f"{base}/status/", {"status": "identified", "note": "bad deploy"}, format="json").json()["status"]
        == "identified"
    )
    assert (
        client.post(f"{base}/severity/", {"severity": "P1", "reason": "spreading"}, format="json").json()["severity"]
        == "P1"
    )
    missing_reason = client.post(f"{base}/severity/", {"severity": "P0", "reason": " "}, format="json")
    assert missing_reason.status_code == 400 and missing_reason.json()["field"] == "reason"
    roles = client.post(f"{base}/roles/", {"role": "scribe", "holder": other.username}, format="json").json()["roles"]
    assert {"scribe", "incident_commander"} == {r["role"] for r in roles}
    ack = client.post(f"{base}/acknowledge/")
    assert ack.status_code == 200 and ack.json()["acknowledged_by"]["username"] == responder.username
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert EntryKind.STATUS in kinds and EntryKind.SEVERITY in kinds and EntryKind.ROLE in kinds


@pytest.mark.parametrize(
    ("suffix", "body", "field"),
    [
        ("/severity/", {"severity": "P1", "reason": 42}, "reason"),
        ("/severity/", {"severity": "P1", "reason": 4.5}, "reason"),
        ("/status/", {"status": "identified", "note": 7}, "note"),
        ("/status/", {"status": "identified", "note": ["bad deploy"]}, "note"),
        ("/timeline/", {"body": 123}, "body"),
        ("/timeline/", {"body": True}, "body"),
        ("/updates/", {"kind": "internal", "status": "investigating", "what_we_know": 1}, "what_we_know"),
    ],
)
def test_numbers_in_text_fields_are_400_naming_the_field(responder, suffix, body, field):
    incident = declare(by=responder, level="P2")
    before = incident.timeline.count()
    response = api(responder).post(f"/api/v1/incidents/{incident.reference}{suffix}", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["field"] == field and set(error["errors"]) == {field}
    assert "Must be text" in error["detail"]
    incident.refresh_from_db()
    assert (incident.severity.level, incident.status) == ("P2", Status.INVESTIGATING)
    assert incident.timeline.count() == before


def test_declare_with_a_number_as_title_is_400_and_strings_still_work(responder):
    client = api(responder)
    response = client.post("/api/v1/incidents/", {"title": 500, "severity": "P2"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "title" and "not a number" in response.json()["detail"]
    assert not Incident.objects.exists()
    response = client.post(
        "/api/v1/incidents/", {"title": "500s on checkout", "severity": "P2", "summary": "42"}, format="json"
    )
    assert response.status_code == 201 and response.json()["title"] == "500s on checkout"
    reference = response.json()["reference"]
    assert (
        client.post(
            f"/api/v1/incidents/{reference}/severity/", {"severity": "P1", "reason": "42"}, format="json"
        ).json()["severity"]
        == "P1"
    )
    assert client.post(f"/api/v1/incidents/{reference}/timeline/", {"body": "7"}, format="json").status_code == 201


def test_token_name_must_be_text(viewer):
    session = APIClient()
    session.force_authenticate(viewer)
    response = session.post("/api/v1/tokens/", {"name": 12345}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "name"
    assert not ApiToken.objects.exists()


def test_reference_lookup_accepts_number_and_lowercase(responder):
    incident = declare(by=responder)
    client = api(responder)
    assert client.get(f"/api/v1/incidents/{incident.number}/").status_code == 200
    assert client.get(f"/api/v1/incidents/inc-{incident.number}/").status_code == 200
    assert client.get("/api/v1/incidents/INC-999999/").status_code == 404
    assert client.get("/api/v1/incidents/INC-999999/").json()["code"] == "not_found"


def test_timeline_since_cursor_and_add(responder):
    incident = declare(by=responder)
    client = api(responder)
    url = f"/api/v1/incidents/{incident.reference}/timeline/"
    first = client.get(url).json()
    assert first["results"] and first["next_after"] == first["results"][-1]["id"]
    assert client.get(url, {"after": first["next_after"]}).json()["results"] == []
    added = client.post(url, {"body": "Rolled back **v2.14**"}, format="json")
    assert added.status_code == 201
    assert "<strong>v2.14</strong>" in added.json()["body_html"]
    newer = client.get(url, {"after": first["next_after"]}).json()
    assert [e["body"] for e in newer["results"]] == ["Rolled back **v2.14**"]
    assert client.get(url, {"after": "x"}).status_code == 400


def test_backdating_is_refused_for_a_plain_responder(responder):
    incident = declare(by=ResponderFactory())
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    response = api(responder).post(
        f"/api/v1/incidents/{incident.reference}/timeline/", {"body": "earlier", "occurred_at": past}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_status_updates_internal_and_external(responder):
    incident = declare(by=responder)
    client = api(responder)
    url = f"/api/v1/incidents/{incident.reference}/updates/"
    internal = client.post(
        url, {"kind": "internal", "status": "investigating", "what_we_know": "Errors on checkout"}, format="json"
    )
    assert internal.status_code == 201, internal.content
    wrong = client.post(url, {"kind": "external", "status": "fixing", "title": "t", "description": "d"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["field"] == "status"
    external = client.post(
        url,
        {
            "kind": "external",
            "status": "identified",
            "title": "Checkout errors",
            "description": "Some payments fail",
            "publish": True,
        },
        format="json",
    )
    assert external.status_code == 201 and external.json()["is_published"] is True
    assert [u["kind"] for u in client.get(url, {"kind": "internal"}).json()] == ["internal"]
    assert len(client.get(url).json()) == 2


def test_status_page_update_sets_component_states_by_slug(responder):
    checkout = ServiceFactory(name="Checkout", slug="checkout")
    incident = declare(by=responder, level="P0", services=[checkout])
    client = api(responder)
    url = f"/api/v1/incidents/{incident.reference}/updates/"
    body = {"kind": "external", "status": "identified", "title": "t", "description": "d", "publish": True}
    unknown = client.post(url, {**body, "component_states": {"nope": "major_outage"}}, format="json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "component_states"
    bad_state = client.post(url, {**body, "component_states": {"checkout": "on_fire"}}, format="json")
    assert bad_state.status_code == 400 and bad_state.json()["field"].startswith("component_states")
    ok = client.post(url, {**body, "component_states": {"checkout": "degraded_performance"}}, format="json")
    assert ok.status_code == 201 and ok.json()["affected_services"] == ["checkout"]
    assert "Degraded performance" in APIClient().get("/status/").content.decode()


def test_checklist_tick_and_untick(responder):
    incident = declare(by=responder)
    client = api(responder)
    items = client.get(f"/api/v1/incidents/{incident.reference}/checklist/").json()
    triage = next(i for i in items if i["phase"] == ChecklistPhase.TRIAGE)
    url = f"/api/v1/incidents/{incident.reference}/checklist/{triage['id']}/"
    ticked = client.post(url, {"checked": True}, format="json").json()
    assert ticked["is_checked"] and ticked["checked_by"]["username"] == responder.username
    assert client.post(url, {"checked": False}, format="json").json()["is_checked"] is False
    other = declare(by=responder)
    wrong_incident = f"/api/v1/incidents/{other.reference}/checklist/{triage['id']}/"
    assert client.post(wrong_incident, {"checked": True}, format="json").status_code == 404


def test_list_filters_and_cursor_pagination(responder):
    checkout = ServiceFactory(slug="checkout")
    declared = [declare(by=responder, level="P2", title=f"i{n}") for n in range(5)]
    with_service = declare(by=responder, level="P0", services=[checkout])
    client = api(responder)
    page = client.get("/api/v1/incidents/", {"page_size": 2}).json()
    assert [i["reference"] for i in page["results"]] == [with_service.reference, declared[-1].reference]
    second = client.get(page["next"]).json()
    assert [i["reference"] for i in second["results"]] == [declared[-2].reference, declared[-3].reference]
    assert [i["reference"] for i in client.get("/api/v1/incidents/", {"severity": "P0"}).json()["results"]] == [
        with_service.reference
    ]
    assert len(client.get("/api/v1/incidents/", {"service": "checkout"}).json()["results"]) == 1
    assert len(client.get("/api/v1/incidents/", {"status": ["investigating"]}).json()["results"]) == 6
    assert client.get("/api/v1/incidents/", {"active": "false"}).json()["results"] == []
    bad = client.get("/api/v1/incidents/", {"status": "exploded"})
    assert bad.status_code == 400 and bad.json()["field"] == "status"


def test_list_costs_a_fixed_number_of_queries(responder, django_assert_max_num_queries):
    for n in range(8):
        declare(by=responder, title=f"i{n}", services=[ServiceFactory()])
    client = api(responder)
    client.get("/api/v1/incidents/")
    with django_assert_max_num_queries(8):
        assert len(client.get("/api/v1/incidents/").json()["results"]) == 8


# --- Restricted incidents ----------------------------------------------------------------------------------------


def test_restricted_incident_is_invisible_to_outsiders_everywhere(responder):
    security = SecurityFactory()
    restricted = declare(by=security, is_restricted=True, title="Data breach")
    outsider = api(responder)
    base = f"/api/v1/incidents/{restricted.reference}"
    assert outsider.get(f"{base}/").status_code == 404
    for suffix in ["/timeline/", "/updates/", "/checklist/", "/alerts/", "/recent-changes/"]:
        assert outsider.get(f"{base}{suffix}").status_code == 404, suffix
    for suffix, body in [
        ("/status/", {"status": "identified"}),
        ("/acknowledge/", {}),
        ("/timeline/", {"body": "x"}),
        ("/severity/", {"severity": "P0", "reason": "x"}),
    ]:
        response = outsider.post(f"{base}{suffix}", body, format="json")
        assert response.status_code == 404, suffix
    listed = [i["reference"] for i in outsider.get("/api/v1/incidents/").json()["results"]]
    assert restricted.reference not in listed
    assert api(security).get(f"{base}/").status_code == 200
    # A responder added to it can see it.
    restricted.responder_links.create(user=responder)
    assert outsider.get(f"{base}/").status_code == 200


# --- Tokens ------------------------------------------------------------------------------------------------------


def test_token_lifecycle_create_use_revoke(viewer):
    session = APIClient()
    session.force_authenticate(viewer)
    created = session.post("/api/v1/tokens/", {"name": "laptop"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    token = ApiToken.objects.get(pk=created.json()["id"])
    assert token.key_hash != key and key not in token.key_hash  # stored hashed
    with_token = APIClient()
    with_token.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert with_token.get("/api/v1/incidents/").status_code == 200
    listed = session.get("/api/v1/tokens/").json()
    assert [t["name"] for t in listed] == ["laptop"] and "key" not in listed[0]
    assert session.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    response = with_token.get("/api/v1/incidents/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_cannot_revoke_someone_elses_token(viewer, responder):
    token, _ = make_token(responder)
    session = APIClient()
    session.force_authenticate(viewer)
    assert session.delete(f"/api/v1/tokens/{token.pk}/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_expired_token_and_garbage_token_are_401(responder):
    token, key = make_token(responder)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/incidents/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert client.get("/api/v1/incidents/").status_code == 401
    anonymous = APIClient().get("/api/v1/incidents/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")


def test_per_token_rate_limit_is_429_with_retry_after(responder, settings):
    settings.API_TOKEN_RATE_LIMIT_PER_MINUTE = 3
    client = api(responder)
    codes = [client.get("/api/v1/severities/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.get("/api/v1/severities/")
    assert int(response["Retry-After"]) >= 1 and response.json()["code"] == "throttled"
    assert api(responder).get("/api/v1/severities/").status_code == 200  # a second token has its own budget


def test_admin_creates_a_token_for_themselves_in_the_admin(client):
    admin_user = ManagerFactory(is_superuser=True)
    client.force_login(admin_user)
    response = client.post("/admin/alerting/apitoken/add/", {"name": "ci"}, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get(user=admin_user)
    message = next(str(m) for m in response.context["messages"] if "shown once" in str(m))
    key = message.rsplit(" ", 1)[-1]
    assert token.key_prefix == key[:12]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert bearer.get("/api/v1/services/").status_code == 200


def test_closed_incident_status_cannot_change(manager):
    incident = declare(by=manager)
    incident.status = Status.CLOSED
    incident.save()
    response = api(manager).post(
        f"/api/v1/incidents/{incident.reference}/status/", {"status": "investigating"}, format="json"
    )
    assert response.status_code == 409


@time_machine.travel("2026-03-01 12:00:00+00:00", tick=False)
@pytest.mark.parametrize(
    ("detected_at", "message"),
    [
        ("9999-12-31T23:59:59Z", "Detection time cannot be in the future."),
        ("2026-03-01T12:05:00Z", "Detection time cannot be in the future."),
        ("1900-01-01T00:00:00Z", "at most a year before the declaration (from Fri 28 Feb 2025, 12:00 UTC)"),
        ("0001-01-01T00:00:00Z", "at most a year before the declaration"),
        ("2025-02-28T12:00:00+01:00", "at most a year before the declaration"),
    ],
)
def test_declare_with_detection_time_out_of_range_is_400_naming_the_field(responder, detected_at, message):
    response = api(responder).post(
        "/api/v1/incidents/", {"title": "x", "severity": "P2", "detected_at": detected_at}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "detected_at" and message in response.json()["detail"]
    assert not Incident.objects.exists()


@time_machine.travel("2026-03-01 12:00:00+00:00", tick=False)
def test_declare_retroactively_through_the_api(responder):
    response = api(responder).post(
        "/api/v1/incidents/", {"title": "x", "severity": "P2", "detected_at": "2025-09-01T08:00:00Z"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["detected_at"].startswith("2025-09-01T08:00:00")


def test_timeline_entry_and_next_update_out_of_range_are_400_naming_the_field(responder):
    incident = declare(by=responder)  # the declarer is the Incident Commander and may back-date
    client = api(responder)
    base = f"/api/v1/incidents/{incident.reference}"
    early = client.post(f"{base}/timeline/", {"body": "x", "occurred_at": "1900-01-01T00:00:00Z"}, format="json")
    assert early.status_code == 400 and early.json()["field"] == "occurred_at"
    assert "at most a year before the incident was detected" in early.json()["detail"]
    late = client.post(f"{base}/timeline/", {"body": "x", "occurred_at": "9999-12-31T00:00:00Z"}, format="json")
    assert late.status_code == 400 and late.json()["field"] == "occurred_at"
    update = {"kind": "internal", "status": "investigating", "what_we_know": "x"}
    far = client.post(f"{base}/updates/", {**update, "next_update_at": "9999-12-31T00:00:00Z"}, format="json")
    assert far.status_code == 400 and far.json()["field"] == "next_update_at"
    assert "within a week" in far.json()["detail"]
    assert not incident.status_updates.exists()
    assert not incident.timeline.filter(body="x").exists()

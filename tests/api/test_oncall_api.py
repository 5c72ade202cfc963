"""On-call API: who is on call now / at a time per team, rotations, overrides through oncall.services."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from oncall.models import Override, Slot
from tests.factories import ManagerFactory, ResponderFactory, ViewerFactory
from tests.oncall.factories import PersonFactory, guide_rotation

from .factories import make_token

pytestmark = pytest.mark.django_db


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)[1]}")
    return client


def _holder(body, slot):
    return next(s for s in body[0]["rotations"][0]["slots"] if s["slot"] == slot)["current"]["person"]["name"]


def test_who_is_on_call_at_a_time_follows_the_guide_table(viewer):
    rotation, people = guide_rotation()
    client = api(viewer)
    week1 = client.get("/api/v1/oncall/now/", {"at": "2026-01-05T10:00:00Z", "team": rotation.team.slug}).json()
    assert _holder(week1, Slot.PRIMARY) == people["A"].name
    assert _holder(week1, Slot.SECONDARY) == people["B"].name
    assert _holder(week1, Slot.INCIDENT_COMMANDER) == people["X"].name
    week2 = client.get("/api/v1/oncall/now/", {"at": "2026-01-12T10:00:00Z", "team": rotation.team.slug}).json()
    assert _holder(week2, Slot.PRIMARY) == people["B"].name
    assert week2[0]["rotations"][0]["next_handoff"].startswith("2026-01-19T09:00:00")
    bad = client.get("/api/v1/oncall/now/", {"at": "next tuesday"})
    assert bad.status_code == 400 and bad.json()["field"] == "at"


def test_manager_override_changes_who_is_on_call(manager):
    rotation, people = guide_rotation()
    client = api(manager)
    start = datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
    response = client.post(
        "/api/v1/oncall/overrides/",
        {
            "rotation": rotation.pk,
            "slot": "primary",
            "person": people["C"].pk,
            "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat(),
            "reason": "swap",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["created_by"] == manager.username
    during = client.get("/api/v1/oncall/now/", {"at": "2026-01-06T12:00:00Z"}).json()
    current = next(s for s in during[0]["rotations"][0]["slots"] if s["slot"] == "primary")["current"]
    assert current["person"]["name"] == people["C"].name and current["is_override"] is True
    assert client.delete(f"/api/v1/oncall/overrides/{response.json()['id']}/").status_code == 204
    assert not Override.objects.exists()


def test_override_errors_come_from_the_service(manager):
    rotation, people = guide_rotation()
    outsider = PersonFactory()  # not in the team
    start = datetime(2026, 1, 6, tzinfo=UTC)
    body = {
        "rotation": rotation.pk,
        "person": outsider.pk,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=4)).isoformat(),
    }
    response = api(manager).post("/api/v1/oncall/overrides/", body, format="json")
    assert response.status_code == 400 and response.json()["field"] == "person"
    backwards = {**body, "person": people["A"].pk, "end": (start - timedelta(hours=1)).isoformat()}
    response = api(manager).post("/api/v1/oncall/overrides/", backwards, format="json")
    assert response.status_code == 400


def test_responder_may_not_override_for_someone_else_and_viewer_not_at_all():
    rotation, people = guide_rotation()
    start = datetime(2026, 1, 6, tzinfo=UTC)
    body = {
        "rotation": rotation.pk,
        "person": people["A"].pk,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=4)).isoformat(),
    }
    refused = api(ResponderFactory()).post("/api/v1/oncall/overrides/", body, format="json")
    assert refused.status_code == 403 and refused.json()["field"] == "person"
    assert api(ViewerFactory()).post("/api/v1/oncall/overrides/", body, format="json").status_code == 403
    assert APIClient().post("/api/v1/oncall/overrides/", body, format="json").status_code == 401
    assert not Override.objects.exists()


@pytest.mark.parametrize("path", ["now/", "teams/", "people/", "rotations/", "overrides/"])
@pytest.mark.parametrize("role", ["anonymous", "viewer", "responder", "manager"])
def test_oncall_reads_for_every_signed_in_role(path, role):
    guide_rotation()
    factory = {"viewer": ViewerFactory, "responder": ResponderFactory, "manager": ManagerFactory}.get(role)
    response = api(factory() if factory else None).get(f"/api/v1/oncall/{path}")
    assert response.status_code == (401 if role == "anonymous" else 200)


def test_rotation_detail_lists_members_in_order(viewer):
    rotation, people = guide_rotation()
    body = api(viewer).get(f"/api/v1/oncall/rotations/{rotation.pk}/").json()
    primaries = [m["person"]["name"] for m in body["members"] if m["slot"] == "primary"]
    assert primaries == [people["A"].name, people["B"].name, people["C"].name]
    assert api(viewer).post("/api/v1/oncall/rotations/", {}, format="json").status_code in {403, 405}

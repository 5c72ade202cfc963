"""API tokens belong to the person who made them (issue 17, findings 1 and 8).

Nobody creates a token for someone else or moves one to another user; staff may only revoke others' tokens.
Tokens are created in a signed-in browser session, never by another token, and live at most
API_TOKEN_MAX_LIFETIME_DAYS."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from incidents.alerting.models import ApiToken
from incidents.alerting.services.tokens import create_api_token, rename_api_token
from incidents.errors import DomainError
from tests.factories import ManagerFactory, UserFactory, ViewerFactory, declare

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


def _bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _restricted_incident(by):
    return declare(by=by, title="Customer database exfiltrated", is_restricted=True)


def test_manager_adding_a_token_with_user_admin_gets_a_token_for_themselves(manager_client, manager, admin_user):
    response = manager_client.post(
        "/admin/alerting/apitoken/add/", {"user": admin_user.pk, "name": "takeover"}, follow=True
    )
    assert response.status_code == 200
    assert not ApiToken.objects.filter(user=admin_user).exists()
    token = ApiToken.objects.get(name="takeover")
    assert token.user == manager
    key = next(str(m) for m in response.context["messages"] if "shown once" in str(m)).rsplit(" ", 1)[-1]
    incident = _restricted_incident(admin_user)
    # The key acts as the manager, who cannot see the restricted incident.
    assert _bearer(key).get(f"/api/v1/incidents/{incident.reference}/").status_code == 404


def test_the_add_form_has_no_user_field(manager_client):
    page = manager_client.get("/admin/alerting/apitoken/add/").content.decode()
    assert 'name="user"' not in page


def test_editing_ones_own_token_cannot_move_it_to_admin(manager_client, manager, admin_user):
    token, key = create_api_token(user=manager, name="laptop")
    response = manager_client.post(
        f"/admin/alerting/apitoken/{token.pk}/change/",
        {"user": admin_user.pk, "name": "renamed", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.user == manager and token.name == "renamed"
    incident = _restricted_incident(admin_user)
    assert _bearer(key).get(f"/api/v1/incidents/{incident.reference}/").status_code == 404


def test_editing_ones_own_token_cannot_extend_its_expiry(manager_client, manager):
    token, _ = create_api_token(user=manager, name="laptop")
    expiry = token.expires_at
    manager_client.post(
        f"/admin/alerting/apitoken/{token.pk}/change/",
        {"name": "laptop", "expires_at_0": "2999-01-01", "expires_at_1": "00:00:00"},
    )
    token.refresh_from_db()
    assert token.expires_at == expiry


def test_staff_may_only_revoke_someone_elses_token(manager_client, manager):
    owner = ViewerFactory()
    token, _ = create_api_token(user=owner, name="ci")
    change = manager_client.post(
        f"/admin/alerting/apitoken/{token.pk}/change/", {"user": manager.pk, "name": "mine now"}
    )
    assert change.status_code == 403
    token.refresh_from_db()
    assert token.user == owner and token.name == "ci"
    response = manager_client.post(
        "/admin/alerting/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_a_token_never_changes_owner_even_through_the_service_layer(manager):
    token, _ = create_api_token(user=manager, name="laptop")
    with pytest.raises(DomainError):
        rename_api_token(token=token, by=ViewerFactory(), name="stolen")
    token.refresh_from_db()
    assert token.name == "laptop"


def test_admin_group_member_cannot_create_a_token_for_another_user(client):
    admin_member = UserFactory(username="opsadmin", is_staff=True)
    admin_member.groups.add(Group.objects.get(name="admin"))
    other = ManagerFactory()
    client.force_login(admin_member)
    client.post("/admin/alerting/apitoken/add/", {"user": other.pk, "name": "x"})
    assert not ApiToken.objects.filter(user=other).exists()
    assert ApiToken.objects.get(name="x").user == admin_member


# --- Finding 8: tokens are minted in the browser only, with a bounded lifetime ------------------------------------


def test_a_token_cannot_mint_another_token(viewer):
    _, key = create_api_token(user=viewer, name="parent")
    response = _bearer(key).post("/api/v1/tokens/", {"name": "child"}, format="json")
    assert response.status_code == 403
    assert "browser" in response.json()["detail"]
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["parent"]


def test_a_token_cannot_revoke_another_token_of_its_owner(viewer):
    parent, _ = create_api_token(user=viewer, name="parent")
    _, child_key = create_api_token(user=viewer, name="child")
    response = _bearer(child_key).delete(f"/api/v1/tokens/{parent.pk}/")
    assert response.status_code == 403
    parent.refresh_from_db()
    assert parent.revoked_at is None


def test_a_token_may_revoke_itself(viewer):
    token, key = create_api_token(user=viewer, name="leaked")
    assert _bearer(key).delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    assert _bearer(key).get("/api/v1/incidents/").status_code == 401


def test_expiry_beyond_the_maximum_lifetime_is_refused_naming_the_field(viewer):
    session = APIClient()
    session.force_authenticate(viewer)
    response = session.post("/api/v1/tokens/", {"name": "forever", "expires_at": "2999-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "expires_at" and "365 days" in body["detail"]
    assert not ApiToken.objects.exists()


def test_expiry_beyond_the_maximum_lifetime_is_a_form_error_in_the_admin(manager_client):
    far = timezone.localtime() + timedelta(days=400)
    response = manager_client.post(
        "/admin/alerting/apitoken/add/",
        {"name": "forever", "expires_at_0": far.date().isoformat(), "expires_at_1": "00:00:00"},
    )
    assert response.status_code == 200
    assert "365 days" in str(response.context["adminform"].form.errors["expires_at"])
    assert not ApiToken.objects.exists()


def test_a_token_without_expiry_gets_the_maximum_lifetime_and_stops_after_it(viewer, settings):
    settings.API_TOKEN_MAX_LIFETIME_DAYS = 30
    session = APIClient()
    session.force_authenticate(viewer)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        created = session.post("/api/v1/tokens/", {"name": "ci"}, format="json")
        assert created.status_code == 201
        token = ApiToken.objects.get(pk=created.json()["id"])
        assert token.expires_at == token.created_at + timedelta(days=30)
        key = created.json()["key"]
        assert _bearer(key).get("/api/v1/incidents/").status_code == 200
        traveller.shift(timedelta(days=30, seconds=1))
        assert _bearer(key).get("/api/v1/incidents/").status_code == 401


def test_lowering_the_maximum_lifetime_ends_older_tokens(viewer, settings):
    token, key = create_api_token(user=viewer, name="ci")
    ApiToken.objects.filter(pk=token.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert _bearer(key).get("/api/v1/incidents/").status_code == 200
    settings.API_TOKEN_MAX_LIFETIME_DAYS = 30
    assert _bearer(key).get("/api/v1/incidents/").status_code == 401

"""Single sign-on against a real OpenID Provider (npm's oidc-provider on loopback): the code flow through the
portal's own views and mozilla-django-oidc, accounts and groups from the claims, failures, log-out at the
provider."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from incidents.accounts.checks import check_second_factor_for_staff, check_sso_settings
from incidents.audit.models import AuditRecord
from tests.factories import ManagerFactory, ResponderFactory

from .conftest import sign_in_at_provider

pytestmark = pytest.mark.django_db


def groups_of(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_login_page_has_no_sso_button_unless_configured(client, settings):
    settings.OIDC_RP_CLIENT_ID = ""
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()
    assert client.get("/accounts/oidc/authenticate/").status_code == 404
    assert client.get("/accounts/oidc/callback/?code=a&state=b").status_code == 404


def test_login_page_offers_the_provider_and_keeps_the_next_page(client, sso):
    page = client.get("/accounts/login/?next=/incidents/").content.decode()
    assert "Sign in with Test IdP" in page
    assert 'href="/accounts/oidc/authenticate/?next=%2Fincidents%2F"' in page
    assert 'name="password"' in page  # local accounts still sign in with a password


def test_first_sign_in_creates_the_user_with_groups_from_the_claim(client, sso):
    response = sign_in_at_provider(client, sso, login="alice", password="alice-at-the-idp", next_url="/incidents/")

    assert response.status_code == 302
    assert response["Location"] == "/incidents/"
    user = User.objects.get(sso_identity__subject="alice", sso_identity__issuer=sso.issuer)
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "alice",
        "alice@example.test",
        "Alice",
        "Ng",
    )
    assert groups_of(user) == {"security", "incident_manager", "viewer"}
    assert user.is_staff and not user.is_superuser
    assert not user.has_usable_password()
    assert client.get("/incidents/").status_code == 200
    assert int(client.session["_auth_user_id"]) == user.pk
    # The account and its group memberships are in the audit trail.
    assert AuditRecord.objects.filter(object_type="auth.user", object_id=str(user.pk), action="created").exists()
    assert AuditRecord.objects.filter(object_type="accounts.ssoidentity", action="created").exists()


def test_groups_are_re_synced_from_the_claim_at_every_sign_in(client, sso, provider_accounts):
    sign_in_at_provider(client, sso, login="alice", password="alice-at-the-idp")
    user = User.objects.get(sso_identity__subject="alice")
    assert groups_of(user) == {"security", "incident_manager", "viewer"}
    client.logout()

    # At the provider, Alice leaves the security and manager teams and joins the responders.
    provider_accounts.set_groups("alice", ["ip-responders"])
    sign_in_at_provider(client, sso, login="alice", password="alice-at-the-idp")

    user.refresh_from_db()
    assert groups_of(user) == {"responder"}
    assert not user.is_staff  # staff follows the manager/admin groups
    assert User.objects.filter(sso_identity__subject="alice").count() == 1


def test_groups_the_map_does_not_name_are_left_as_an_admin_set_them(client, sso, provider_accounts):
    from django.contrib.auth.models import Group

    sign_in_at_provider(client, sso, login="bob", password="bob-at-the-idp")
    user = User.objects.get(sso_identity__subject="bob")
    user.groups.add(Group.objects.get(name="admin"))  # given by a portal admin; not one the map manages
    client.logout()

    sign_in_at_provider(client, sso, login="bob", password="bob-at-the-idp")

    user.refresh_from_db()
    assert groups_of(user) == {"responder", "admin"}
    assert user.is_staff


def test_an_existing_local_account_with_the_same_email_is_not_taken_over(client, sso):
    local = ManagerFactory(username="alice", email="alice@example.test")

    sign_in_at_provider(client, sso, login="alice", password="alice-at-the-idp")

    signed_in = User.objects.get(pk=int(client.session["_auth_user_id"]))
    assert signed_in.pk != local.pk
    assert signed_in.username == "alice-2"
    local.refresh_from_db()
    assert local.has_usable_password() and groups_of(local) == {"incident_manager"}


def test_a_deactivated_account_cannot_sign_in_through_the_provider(client, sso, provider_accounts):
    sign_in_at_provider(client, sso, login="bob", password="bob-at-the-idp")
    User.objects.filter(sso_identity__subject="bob").update(is_active=False)
    client.logout()
    provider_accounts.set_groups("bob", ["ip-managers"])

    response = sign_in_at_provider(client, sso, login="bob", password="bob-at-the-idp")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session
    page = client.get("/accounts/login/").content.decode()
    assert "Sign-in with Test IdP did not succeed" in page
    bob = User.objects.get(sso_identity__subject="bob")
    assert groups_of(bob) == {"responder"} and not bob.is_staff  # nothing changed for a deactivated account


def test_a_callback_without_a_started_sign_in_ends_on_the_login_page(client, sso):
    response = client.get("/accounts/oidc/callback/?code=forged&state=forged", follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "Sign-in with Test IdP did not succeed" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_unreachable_token_endpoint_is_a_message_not_a_500(client, sso, settings):
    def provider_goes_away():
        settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"  # discard port: connection refused

    response = sign_in_at_provider(
        client, sso, login="alice", password="alice-at-the-idp", before_callback=provider_goes_away
    )

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(sso_identity__subject="alice").exists()


def test_an_id_token_from_another_issuer_is_refused(client, sso, settings):
    def expect_another_issuer():
        settings.OIDC_OP_ISSUER = "http://127.0.0.1:1/other-issuer"

    response = sign_in_at_provider(
        client, sso, login="alice", password="alice-at-the-idp", before_callback=expect_another_issuer
    )

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not User.objects.filter(sso_identity__subject="alice").exists()


def test_log_out_of_an_sso_session_ends_the_session_at_the_provider(client, sso):
    sign_in_at_provider(client, sso, login="alice", password="alice-at-the-idp")
    id_token = client.session["oidc_id_token"]

    response = client.post("/accounts/logout/")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    page = response.content.decode()
    url = page.split('http-equiv="refresh" content="0;url=', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == sso.discovery["end_session_endpoint"]
    query = parse_qs(parts.query)
    assert query["id_token_hint"] == [id_token]
    assert query["post_logout_redirect_uri"] == ["http://testserver/accounts/login/"]
    assert query["client_id"] == ["incident-portal"]


def test_log_out_of_a_password_session_stays_local(client, settings, sso):
    client.force_login(ResponderFactory())

    response = client.post("/accounts/logout/")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"


def test_sso_sign_in_of_staff_is_exempt_from_the_portals_own_two_factor(client, sso, settings):
    settings.OTP_REQUIRED_FOR_STAFF = True

    response = sign_in_at_provider(client, sso, login="alice", password="alice-at-the-idp", next_url="/admin/")

    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert "identity provider is responsible" in client.get("/accounts/two-factor/").content.decode()


def test_oidc_discover_prints_the_settings_from_the_provider(sso, capsys):
    call_command("oidc_discover", sso.issuer)

    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    assert lines["OIDC_ISSUER"] == sso.issuer
    assert lines["OIDC_TOKEN_ENDPOINT"] == sso.discovery["token_endpoint"]
    assert lines["OIDC_END_SESSION_ENDPOINT"] == sso.discovery["end_session_endpoint"]
    with pytest.raises(CommandError, match="Could not read"):
        call_command("oidc_discover", "http://127.0.0.1:9", "--timeout", "2")


def test_checks_refuse_a_bad_group_map_or_a_half_configured_provider(settings):
    settings.OIDC_GROUP_MAP = json.dumps({"ip-security": "secops"})
    settings.OIDC_RP_CLIENT_ID = "portal"
    settings.OIDC_OP_TOKEN_ENDPOINT = ""
    ids = {error.id: error.msg for error in check_sso_settings()}
    assert "secops" in ids["accounts.E001"]
    assert "OIDC_TOKEN_ENDPOINT" in ids["accounts.E002"]

    settings.OIDC_GROUP_MAP = "not json"
    assert [error.id for error in check_sso_settings() if error.id == "accounts.E001"]


def test_deploy_check_warns_when_staff_may_sign_in_with_a_password_alone(settings):
    settings.OTP_REQUIRED_FOR_STAFF = False
    assert [warning.id for warning in check_second_factor_for_staff()] == ["accounts.W001"]
    settings.OTP_REQUIRED_FOR_STAFF = True
    assert check_second_factor_for_staff() == []

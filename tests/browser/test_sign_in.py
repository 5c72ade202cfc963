"""Sign-in in Chromium: single sign-on through a real OpenID Provider (npm's oidc-provider on loopback) and
two-factor enrolment, sign-in with a code and with a single-use recovery code."""

import json
import re
import time
from base64 import b32decode
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django_otp.oath import TOTP

from tests.accounts.openid_provider import openid_provider
from tests.factories import ManagerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
GROUP_MAP = {"ip-security": "security", "ip-managers": "incident_manager", "ip-responders": "responder"}
ACCOUNTS = {
    "alice": {
        "password": "alice-at-the-idp",
        "claims": {
            "email": "alice@example.test",
            "given_name": "Alice",
            "family_name": "Ng",
            "preferred_username": "alice",
            "groups": ["ip-security", "ip-managers"],
        },
    }
}


def loopback_only(context):
    """Every request the browser makes stays on this machine: anything else is refused (and would fail a test)."""
    escaped = []

    def guard(route):
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            escaped.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    return escaped


def test_sso_sign_in_maps_groups_and_log_out_ends_the_provider_session(live_server, new_context, settings, tmp_path):
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps(ACCOUNTS))
    with openid_provider(portal_urls=[live_server.url], accounts_file=accounts_file) as provider:
        for name, value in provider.settings(group_map=GROUP_MAP).items():
            setattr(settings, name, value)
        context = new_context()
        escaped = loopback_only(context)
        page = context.new_page()

        page.goto(f"{live_server.url}/accounts/login/?next=/incidents/")
        page.get_by_role("link", name="Sign in with Test IdP").click()
        page.wait_for_url(f"{provider.issuer}/interaction/**")
        assert page.get_by_role("heading").inner_text() == "Sign in to the Test Identity Provider"
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("alice-at-the-idp")
        page.screenshot(path=str(tmp_path / "provider-login.png"))
        page.get_by_role("button", name="Sign in").click()

        page.wait_for_url(f"{live_server.url}/incidents/")
        header = page.locator(".site-header").inner_text()
        assert "Alice Ng" in header
        assert "Admin" in header and "Audit" in header  # incident_manager (staff) and security, from the claim
        page.screenshot(path=str(tmp_path / "signed-in.png"))
        user = User.objects.get(sso_identity__subject="alice")
        assert set(user.groups.values_list("name", flat=True)) == {"security", "incident_manager"}

        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{provider.issuer}/session/end**")
        page.get_by_role("button", name="Yes, sign me out").click()
        page.wait_for_url(f"{live_server.url}/accounts/login/")
        assert page.get_by_role("heading", name="Log in").is_visible()

        # Signed out at the provider too: the next SSO sign-in asks for the password again.
        page.get_by_role("link", name="Sign in with Test IdP").click()
        page.wait_for_url(f"{provider.issuer}/interaction/**")
        assert page.get_by_label("Password").is_visible()
        assert escaped == []
    print("screenshots in", tmp_path)


def totp_code(secret: str, *, at: float) -> str:
    totp = TOTP(b32decode(secret), step=30, t0=0, digits=6)
    totp.time = at
    return f"{totp.token():06d}"


def log_in(page, base, user):
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_two_factor_enrol_then_sign_in_with_a_code_and_with_a_recovery_code_once(
    live_server, new_context, settings, tmp_path
):
    settings.OTP_REQUIRED_FOR_STAFF = True
    manager = ManagerFactory(first_name="Mia", last_name="Manager")
    context = new_context()
    escaped = loopback_only(context)
    page = context.new_page()

    # Staff with a password alone: straight to enrolment.
    log_in(page, live_server.url, manager)
    page.wait_for_url(re.compile(r".*/accounts/two-factor/\?next=.*"))
    assert page.locator(".qr-code svg").is_visible()
    secret = page.locator("#totp-secret").inner_text()
    assert page.locator("#totp-url").get_attribute("href").startswith("otpauth://totp/")
    page.screenshot(path=str(tmp_path / "enrol.png"))
    enrolled_at = time.time()
    page.get_by_label("Code").fill(totp_code(secret, at=enrolled_at))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    assert page.get_by_role("heading", name="Your recovery codes").is_visible()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.screenshot(path=str(tmp_path / "recovery-codes.png"))
    page.get_by_role("link", name="Continue").click()
    assert "Mia Manager" in page.locator(".site-header").inner_text()

    # Password, then the app's next code.
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server.url, manager)
    page.wait_for_url(re.compile(r".*/accounts/two-factor/verify/.*"))
    page.get_by_label("Code").fill(totp_code(secret, at=enrolled_at + 30))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{live_server.url}/")
    assert "Mia Manager" in page.locator(".site-header").inner_text()
    page.goto(f"{live_server.url}/admin/")
    assert "Site administration" in page.locator("body").inner_text()

    # Password, then a recovery code: it works once.
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server.url, manager)
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{live_server.url}/")
    assert "You signed in with a recovery code; 9 left" in page.locator(".messages").inner_text()

    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server.url, manager)
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    assert "that recovery code was used already" in page.locator("main").inner_text()
    page.screenshot(path=str(tmp_path / "recovery-code-used.png"))
    page.goto(f"{live_server.url}/incidents/")
    assert "/accounts/two-factor/verify/" in page.url
    assert escaped == []
    print("screenshots in", tmp_path)

"""Hardening: brute-force lock-out (django-axes), sessions, cookies, CSRF on htmx requests, security headers
and the production settings (HSTS, SSL redirect, secure cookies, secrets from the environment)."""

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.factories import ResponderFactory

pytestmark = pytest.mark.django_db
BASE_DIR = Path(settings.BASE_DIR)
PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's


def login(client, username, password, url="/accounts/login/"):
    return client.post(url, {"username": username, "password": password})


def test_login_locks_out_after_the_failure_limit_even_with_the_right_password():
    user = ResponderFactory(username="target")
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    assert 3 <= limit <= 10
    for _ in range(limit - 1):
        response = login(client, "target", "wrong guess")
        assert response.status_code == 200 and b"Too many failed" not in response.content
    locked = login(client, "target", "wrong guess")
    assert locked.status_code == 429 and b"Too many failed log-in attempts" in locked.content
    assert login(client, "target", PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    # The admin's login is the same authentication and is locked too.
    assert login(client, "target", PASSWORD, url="/admin/login/").status_code == 429
    # Another account from the same address is not locked (lock-out is per username and address).
    ResponderFactory(username="colleague")
    assert login(Client(), "colleague", PASSWORD).status_code == 302
    assert user.pk


def test_lockout_ends_after_the_cool_off_time():
    ResponderFactory(username="patient")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            login(Client(), "patient", "wrong guess")
        assert login(Client(), "patient", PASSWORD).status_code == 429
    with time_machine.travel(start + settings.AXES_COOLOFF_TIME + timedelta(seconds=1), tick=False):
        assert login(Client(), "patient", PASSWORD).status_code == 302


def test_session_cookie_is_http_only_same_site_and_times_out():
    ResponderFactory(username="sessions")
    response = login(Client(), "sessions", PASSWORD)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert 0 < int(cookie["max-age"]) == settings.SESSION_COOKIE_AGE <= 12 * 3600
    csrf = response.cookies.get(settings.CSRF_COOKIE_NAME)
    assert csrf is None or csrf["samesite"] == "Lax"


def test_expired_session_is_logged_out(client):
    user = ResponderFactory()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.force_login(user)
        assert client.get("/audit/evidence/INC-1/").status_code == 404  # logged in: answered by the view
    with time_machine.travel(start + timedelta(seconds=settings.SESSION_COOKIE_AGE + 1), tick=False):
        response = client.get("/audit/evidence/INC-1/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_htmx_requests_carry_the_csrf_token_and_posts_without_it_are_refused():
    ResponderFactory(username="htmx")
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    assert client.post("/accounts/login/", {"username": "htmx", "password": PASSWORD}).status_code == 403
    assert (
        client.post("/accounts/login/", {"username": "htmx", "password": PASSWORD, "csrfmiddlewaretoken": token})
    ).status_code == 302
    # Every page built on base.html tells htmx to send the token as a header with each request.
    home = client.get("/", follow=True)
    body = re.search(r"<body[^>]*hx-headers='([^']+)'", home.content.decode())
    assert body, "base.html's <body> must carry hx-headers with the CSRF token"
    headers = json.loads(body.group(1))
    assert headers["x-csrftoken"]
    assert client.post("/accounts/logout/", HTTP_HX_REQUEST="true").status_code == 403
    response = client.post("/accounts/logout/", HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=headers["x-csrftoken"])
    assert response.status_code == 302


def test_security_headers_on_pages(client):
    client.force_login(ResponderFactory())
    response = client.get("/", follow=True)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Request-ID"]


def _production_settings(**extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("TESTING", "DEBUG", "SECRET_KEY", "DATABASE_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "incidentportal.settings",
            "DEBUG": "0",
            "SECRET_KEY": "x" * 60,
            "ALLOWED_HOSTS": "incidents.example.com",
            "SITE_URL": "https://incidents.example.com",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
        }
    )
    env.update(extra_env)
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k,"
        " None) for k in ['DEBUG', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS',"
        " 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER', 'SECRET_KEY']}))"
    )
    return subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_force_https_hsts_and_secure_cookies():
    result = _production_settings()
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECRET_KEY"] == "x" * 60  # from the environment


def test_production_refuses_to_start_without_a_secret_key():
    env = {"SECRET_KEY": ""}
    result = _production_settings(**env)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr

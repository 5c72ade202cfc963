"""Refused webhook requests keep a body excerpt for managers, with keys and secrets redacted (issue 17, finding 3)."""

import json

import pytest

from incidents.alerting.models import IntegrationError
from incidents.alerting.redact import redacted_excerpt

from .factories import make_integration

pytestmark = pytest.mark.django_db

PD_URL = "/api/v1/integrations/pagerduty/v2/enqueue"


def post(client, url, body: bytes, **headers):
    return client.generic("POST", url, body, content_type="application/json", **headers)


def test_refused_pagerduty_event_stores_no_routing_key(client, admin_client):
    integration, key = make_integration("pagerduty")
    body = json.dumps({"routing_key": key, "event_action": "explode", "payload": {"summary": "disk full"}})
    assert post(client, PD_URL, body.encode()).status_code == 400
    error = IntegrationError.objects.get(integration=integration)
    assert key not in error.body_excerpt and key[:8] not in error.body_excerpt
    assert '"routing_key": "[redacted]"' in error.body_excerpt
    assert "disk full" in error.body_excerpt and "explode" in error.body_excerpt  # the rest stays readable
    page = admin_client.get(f"/admin/alerting/integrationerror/{error.pk}/change/").content.decode()
    assert key not in page


def test_unknown_routing_key_is_not_stored_either(client):
    body = json.dumps({"routing_key": "0123456789abcdef0123456789abcdef", "event_action": "trigger"})
    assert post(client, PD_URL, body.encode()).status_code == 401
    assert "0123456789abcdef" not in IntegrationError.objects.get().body_excerpt


def test_malformed_body_with_a_key_is_redacted_by_pattern(client):
    secret = "0123456789abcdef0123456789abcdef"
    assert post(client, PD_URL, b'{"routing_key": "' + secret.encode() + b'", "event_action": ').status_code in (
        400,
        401,
    )
    assert secret not in IntegrationError.objects.get().body_excerpt


def test_secrets_in_generic_bodies_are_redacted_at_any_depth(client):
    integration, key = make_integration("generic")
    body = {
        "title": "x" * 0,  # empty title: refused
        "details": {
            "auth": {"password": "hunter2-hunter2", "api_key": "AK-123456789"},
            "headers": ["Authorization: Bearer abcdefghijklmnop", "X-Trace: 1"],
            "notes": "token ipt_AAAAAAAAAAAAAAAAAAAAAAAAAAAA and https://bob:s3cretpw@example.org/hook",
            "client_secret": "shh-shh-shh",
            "dedup_key": "checkout-latency",
        },
    }
    response = post(
        client, "/api/v1/integrations/generic/", json.dumps(body).encode(), HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 400
    excerpt = IntegrationError.objects.get(integration=integration).body_excerpt
    for secret in ["hunter2", "AK-123456789", "abcdefghijklmnop", "ipt_AAAA", "s3cretpw", "shh-shh"]:
        assert secret not in excerpt, secret
    assert "checkout-latency" in excerpt and "X-Trace: 1" in excerpt  # identifiers are not secrets


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        (b"routing_key=0123456789abcdef&event_action=trigger", b"0123456789abcdef"),
        (b"Authorization: Basic dXNlcjpwYXNzd29yZA==\nother: 1", b"dXNlcjpwYXNzd29yZA"),
        (b'{"token": "abc\\"def-long-secret", "x": ', b"def-long-secret"),
        (b'{"password": "' + b"p" * 5000 + b'"}', b"ppp"),
    ],
)
def test_text_that_is_not_json_is_redacted_by_pattern(body, secret):
    excerpt = redacted_excerpt(body)
    assert secret.decode() not in excerpt
    assert len(excerpt) <= 2000


@pytest.mark.parametrize("body", [b'{"summary": "\\ud800"}', b"raw \x00 nul", b'{"a": "\\u0000"}'])
def test_excerpts_of_bodies_postgresql_cannot_store_are_made_storable(client, body):
    _, key = make_integration("generic")
    post(client, "/api/v1/integrations/generic/", body, HTTP_AUTHORIZATION=f"Bearer {key}")
    error = IntegrationError.objects.get()
    assert "\x00" not in error.body_excerpt and error.body_excerpt


@pytest.fixture
def admin_client(client):
    from tests.factories import UserFactory

    other = type(client)()
    other.force_login(UserFactory(is_staff=True, is_superuser=True))
    return other

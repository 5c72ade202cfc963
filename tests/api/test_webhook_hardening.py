"""Webhook hardening (issue 17, findings 4 and 9): absurd timestamps are a 401, not a 500; chunked bodies are read
through the production WSGI application; only POST is accepted; byte-identical signed deliveries are replays."""

import hashlib
import hmac
import io
import json
import sys
import time

import pytest
from django.core import signals
from django.db import close_old_connections
from gunicorn.http.body import Body, ChunkedReader
from gunicorn.http.unreader import IterUnreader

from incidentportal import wsgi
from incidents.alerting.models import AlertEvent, IntegrationError, SeenSignature
from incidents.alerting.services.integrations import prune_seen_signatures, signature_digest
from tests.factories import ServiceFactory

from .factories import fixture_bytes, make_integration

pytestmark = pytest.mark.django_db

HUGE = "9" * 400


def post(client, url, body: bytes, **headers):
    return client.generic("POST", url, body, content_type="application/json", headers=headers)


def _sign(secret: str, body: bytes, stamp: str | None = None) -> str:
    signed = f"{stamp}:".encode() + body if stamp else body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


# --- Finding 4: timestamps of 310+ digits ------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", [HUGE, "-" + HUGE, "1e400", "１２３", "12345678901234567890"])
def test_absurd_timestamp_on_the_signed_grafana_route_is_401(client, stamp):
    integration, _ = make_integration("grafana", hmac_secret="s3cret", hmac_timestamp_header="X-Grafana-Timestamp")
    body = fixture_bytes("grafana_firing.json")
    response = post(
        client,
        f"/api/v1/integrations/grafana/{integration.public_id}/",
        body,
        x_grafana_alerting_signature=_sign("s3cret", body, stamp),
        x_grafana_timestamp=stamp,
    )
    assert response.status_code == 401
    assert response.json()["field"] == "X-Grafana-Timestamp"
    assert not AlertEvent.objects.exists()


def test_absurd_timestamp_on_the_bearer_route_is_401(client):
    integration, key = make_integration("grafana", hmac_secret="s3cret", hmac_timestamp_header="X-Grafana-Timestamp")
    body = fixture_bytes("grafana_firing.json")
    response = post(
        client,
        "/api/v1/integrations/grafana/",
        body,
        authorization=f"Bearer {key}",
        x_grafana_alerting_signature=_sign("s3cret", body, HUGE),
        x_grafana_timestamp=HUGE,
    )
    assert response.status_code == 401
    assert IntegrationError.objects.get(integration=integration).code == "missing_timestamp"


# --- Finding 9: only POST ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "GET"])
def test_only_post_is_accepted_on_webhooks(client, method):
    _, key = make_integration("generic")
    body = json.dumps({"title": "Disk full", "service": "x"}).encode()
    response = client.generic(
        method,
        "/api/v1/integrations/generic/",
        body,
        content_type="application/json",
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not AlertEvent.objects.exists()


# --- Finding 9: replays of signed deliveries ---------------------------------------------------------------------


def test_byte_identical_sentry_delivery_is_a_replay(client):
    integration, _ = make_integration("sentry", hmac_secret="sentry-client-secret")
    body = fixture_bytes("sentry_event_alert.json")
    headers = {
        "sentry_hook_resource": "event_alert",
        "sentry_hook_signature": _sign("sentry-client-secret", body),
        "sentry_hook_timestamp": str(int(time.time())),
    }
    url = f"/api/v1/integrations/sentry/{integration.public_id}/"
    assert post(client, url, body, **headers).status_code == 202
    events = AlertEvent.objects.count()
    replay = post(client, url, body, **headers)
    assert replay.status_code == 409 and replay.json()["code"] == "replayed"
    assert AlertEvent.objects.count() == events
    assert IntegrationError.objects.get(integration=integration).code == "replayed"


def test_byte_identical_grafana_delivery_is_a_replay_with_or_without_a_timestamp(client):
    ServiceFactory(name="Orders DB", slug="orders-db")
    plain, _ = make_integration("grafana", name="plain", hmac_secret="a")
    stamped, _ = make_integration(
        "grafana", name="stamped", hmac_secret="b", hmac_timestamp_header="X-Grafana-Timestamp"
    )
    body = fixture_bytes("grafana_firing.json")
    plain_url = f"/api/v1/integrations/grafana/{plain.public_id}/"
    assert post(client, plain_url, body, x_grafana_alerting_signature=_sign("a", body)).status_code == 202
    assert post(client, plain_url, body, x_grafana_alerting_signature=_sign("a", body)).status_code == 409
    stamp = str(int(time.time()))
    signed = {"x_grafana_alerting_signature": _sign("b", body, stamp), "x_grafana_timestamp": stamp}
    stamped_url = f"/api/v1/integrations/grafana/{stamped.public_id}/"
    assert post(client, stamped_url, body, **signed).status_code == 202
    assert post(client, stamped_url, body, **signed).status_code == 409
    # The same body signed at another second is a new delivery (Grafana's repeat notifications).
    later = str(int(stamp) + 1)
    fresh = {"x_grafana_alerting_signature": _sign("b", body, later), "x_grafana_timestamp": later}
    assert post(client, stamped_url, body, **fresh).status_code == 202


def test_a_signature_seen_longer_ago_than_the_window_is_accepted_again(client, settings):
    settings.ALERTING_REPLAY_WINDOW_SECONDS = 60
    integration, _ = make_integration("sentry", hmac_secret="k")
    body = fixture_bytes("sentry_event_alert.json")
    headers = {"sentry_hook_resource": "event_alert", "sentry_hook_signature": _sign("k", body)}
    url = f"/api/v1/integrations/sentry/{integration.public_id}/"
    assert post(client, url, body, **headers).status_code == 202
    SeenSignature.objects.update(seen_at=SeenSignature.objects.get().seen_at.replace(year=2000))
    assert post(client, url, body, **headers).status_code == 202
    assert prune_seen_signatures() == 0  # the row was reused, not duplicated
    SeenSignature.objects.update(seen_at=SeenSignature.objects.get().seen_at.replace(year=2000))
    assert prune_seen_signatures() == 1


def test_a_delivery_refused_for_the_rate_limit_may_be_retried_identically(client):
    integration, _ = make_integration("sentry", hmac_secret="k", rate_limit_per_minute=1)
    body = fixture_bytes("sentry_event_alert.json")
    headers = {"sentry_hook_resource": "event_alert", "sentry_hook_signature": _sign("k", body)}
    url = f"/api/v1/integrations/sentry/{integration.public_id}/"
    other = fixture_bytes("sentry_issue_created.json")
    assert (
        post(client, url, other, sentry_hook_resource="issue", sentry_hook_signature=_sign("k", other)).status_code
        == 202
    )
    assert post(client, url, body, **headers).status_code == 429
    assert not SeenSignature.objects.filter(digest=signature_digest(integration, _sign("k", body)))


# --- Finding 9: chunked bodies through the production WSGI application ------------------------------------------


def _chunked(body: bytes, size: int = 100) -> bytes:
    out = b""
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


@pytest.fixture
def call_wsgi(settings):
    """Call incidentportal.wsgi.application as gunicorn does for a chunked request: no Content-Length, the body
    decoded by gunicorn's own ChunkedReader, wsgi.input_terminated set."""
    settings.ALLOWED_HOSTS = ["portal.test"]
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)

    def _call(path: str, raw: bytes, **headers):
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "portal.test",
            "SERVER_PORT": "443",
            "HTTP_HOST": "portal.test",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "192.0.2.10",
            "wsgi.url_scheme": "https",
            "wsgi.input": Body(ChunkedReader(None, IterUnreader([raw[i : i + 37] for i in range(0, len(raw), 37)]))),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "CONTENT_TYPE": "application/json",
            "HTTP_TRANSFER_ENCODING": "chunked",
        }
        environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
        captured = {}

        def start_response(status, response_headers, exc_info=None):
            captured["status"] = int(status.split()[0])

        chunks = wsgi.application(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], json.loads(content)

    yield _call
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_chunked_webhook_body_is_read(call_wsgi):
    _, key = make_integration("pagerduty")
    body = fixture_bytes("pagerduty_trigger.json", ROUTING_KEY=key)
    status, answer = call_wsgi("/api/v1/integrations/pagerduty/v2/enqueue", _chunked(body))
    assert status == 202, answer
    assert AlertEvent.objects.count() == 1


def test_chunked_body_over_the_limit_is_413(call_wsgi, settings):
    settings.ALERTING_MAX_BODY_BYTES = 1000
    _, key = make_integration("generic")
    body = json.dumps({"title": "x" * 5000}).encode()
    status, answer = call_wsgi("/api/v1/integrations/generic/", _chunked(body), authorization=f"Bearer {key}")
    assert status == 413 and answer["code"] == "body_too_large"


def test_bytesio_reader_is_untouched_without_chunking():
    # A request with a Content-Length keeps its own stream: the buffering applies to chunked requests only.
    environ = {"CONTENT_LENGTH": "3", "wsgi.input": io.BytesIO(b"abc"), "HTTP_TRANSFER_ENCODING": "chunked"}
    stream = environ["wsgi.input"]
    wsgi.buffer_chunked_body(environ, limit=10)
    assert environ["wsgi.input"] is stream

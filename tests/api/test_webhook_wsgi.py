"""The WSGI application production serves: webhook URLs go to a Django handler with only the middleware they need
(incidentportal.wsgi), every other URL to the full one. The test client always uses the full middleware, so these
tests call the real `application` with WSGI environs."""

import io
import json
import sys

import pytest
from django.core import signals
from django.db import close_old_connections
from django.urls import reverse

from incidentportal import wsgi
from incidents.alerting.models import AlertEvent, IntegrationError, RouteAction
from incidents.audit.models import AuditRecord
from incidents.models import Incident

from .factories import make_integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def call(settings):
    """Call the WSGI application inside the test's transaction (as Django's test client does, without closing the
    connection at request start and end). Returns (status, headers, body)."""
    settings.ALLOWED_HOSTS = ["portal.test"]
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)

    def _call(method: str, path: str, body: bytes = b"", **headers):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "portal.test",
            "SERVER_PORT": "443",
            "HTTP_HOST": "portal.test",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "192.0.2.10",
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
        }
        environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
        captured = {}

        def start_response(status, response_headers, exc_info=None):
            captured["status"], captured["headers"] = int(status.split()[0]), response_headers

        chunks = wsgi.application(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], captured["headers"], content

    yield _call
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def header(headers, name):
    values = [value for key, value in headers if key.lower() == name.lower()]
    return values[0] if values else None


def pagerduty_event(key: str, dedup_key: str = "disk-full-db-1", **fields) -> bytes:
    event = {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": "Disk 95% on db-1", "source": "db-1", "severity": "critical"},
    } | fields
    return json.dumps(event).encode()


def test_webhook_urls_go_to_the_lean_handler_and_the_prefix_matches_the_urlconf(settings):
    assert reverse("alerting:pagerduty").startswith(wsgi.WEBHOOK_PREFIXES)
    assert reverse("alerting:alertmanager").startswith(wsgi.WEBHOOK_PREFIXES)
    # (the common heartbeat ping is answered in front of it: tests/api/test_heartbeat_wsgi.py)
    assert isinstance(wsgi.application.webhooks.fallback, wsgi.WebhookHandler)
    # Building the lean handler leaves the portal's own middleware setting as it was.
    assert set(wsgi.WEBHOOK_MIDDLEWARE) < set(settings.MIDDLEWARE)
    assert "csp.middleware.CSPMiddleware" in settings.MIDDLEWARE


def test_the_lean_handler_builds_its_chain_from_the_webhook_middleware_without_setting_middleware(monkeypatch):
    """Loading the webhook handler never assigns settings.MIDDLEWARE (a swap would show other threads a partial
    list); its chain is the webhook middleware, in the portal's order."""
    from django.conf import settings as live_settings

    assigned = []
    real_setattr = type(live_settings).__setattr__

    def spy(self, name, value):
        assigned.append(name)
        real_setattr(self, name, value)

    monkeypatch.setattr(type(live_settings), "__setattr__", spy)
    built = []
    real_import = wsgi.import_string
    monkeypatch.setattr(wsgi, "import_string", lambda path: built.append(path) or real_import(path))
    original = live_settings.MIDDLEWARE
    handler = wsgi.WebhookHandler()  # a WSGIHandler loads its middleware when made
    assert "MIDDLEWARE" not in assigned and live_settings.MIDDLEWARE is original
    # Built innermost first, as Django does: the chain is the webhook middleware in the portal's order.
    assert list(reversed(built)) == [path for path in original if path in wsgi.WEBHOOK_MIDDLEWARE]
    assert len(built) == len(wsgi.WEBHOOK_MIDDLEWARE) and handler._middleware_chain is not None


def test_a_pagerduty_event_through_the_production_application_is_stored_and_answered_like_pagerduty(call):
    integration, key = make_integration("pagerduty")
    status, headers, body = call("POST", "/api/v1/integrations/pagerduty/v2/enqueue", pagerduty_event(key))
    assert status == 202, body
    assert json.loads(body) == {"status": "success", "message": "Event processed", "dedup_key": "disk-full-db-1"}
    assert AlertEvent.objects.filter(integration=integration, dedup_key="disk-full-db-1").count() == 1
    # Content-Length keeps senders' connections alive; the audit context tags the response.
    assert header(headers, "Content-Length") == str(len(body))
    assert header(headers, "X-Request-ID")
    assert header(headers, "X-Content-Type-Options") == "nosniff"
    # None of the browser machinery: no cookies, no CSP.
    assert header(headers, "Set-Cookie") is None
    assert header(headers, "Content-Security-Policy") is None


def test_bad_input_through_the_production_application_is_a_json_error_naming_the_field(call):
    integration, key = make_integration("pagerduty")
    status, _headers, body = call("POST", "/api/v1/integrations/pagerduty/v2/enqueue", b'{"routing_key": ')
    assert status == 400
    assert json.loads(body)["status"] == "invalid event"
    status, _headers, body = call(
        "POST", "/api/v1/integrations/pagerduty/v2/enqueue", pagerduty_event(key, event_action="explode")
    )
    assert status == 400
    assert "event_action" in body.decode()
    assert IntegrationError.objects.count() == 2
    assert not AlertEvent.objects.exists()


def test_an_incident_declared_by_a_webhook_carries_the_request_id_in_its_audit_trail(call):
    _integration, key = make_integration("pagerduty", default_action=RouteAction.DECLARE)
    status, headers, body = call(
        "POST",
        "/api/v1/integrations/pagerduty/v2/enqueue",
        pagerduty_event(key),
        **{"X-Request-ID": "alert-storm-42"},
    )
    assert status == 202, body
    incident = Incident.objects.get()
    # The request id is the portal's own (answered in the header); the client's is kept beside it.
    request_id = header(headers, "X-Request-ID")
    assert request_id and request_id != "alert-storm-42"
    record = AuditRecord.objects.filter(object_type="incidents.incident", object_id=str(incident.pk)).first()
    assert record is not None
    assert (record.request_id, record.client_request_id, record.source, record.ip_address) == (
        request_id,
        "alert-storm-42",
        "webhook",
        "192.0.2.10",
    )


def test_every_other_url_gets_the_full_middleware(call):
    status, headers, _body = call("GET", "/accounts/login/")
    assert status == 200
    assert header(headers, "Content-Security-Policy")
    assert "csrftoken" in (header(headers, "Set-Cookie") or "")

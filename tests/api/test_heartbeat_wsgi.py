"""Heartbeat pings as production serves them (incidentportal.wsgi.application): the common ping is one statement
answered before Django's request handling (incidentportal/heartbeat_pings.py), with the headers, host check, HTTPS
redirect and metrics the lean handler gives; every other case reaches the view unchanged."""

import io
import sys
import uuid
from datetime import timedelta

import pytest
import time_machine
from django.core import signals
from django.db import close_old_connections
from django.utils import timezone

from incidentportal import wsgi
from incidentportal.heartbeat_pings import HeartbeatPings
from incidents.alerting import heartbeats
from incidents.alerting.models import AlertGroup, GroupStatus, Heartbeat, HeartbeatState
from oncall.health.metrics import REQUESTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def call(settings):
    """Call the WSGI application inside the test's transaction (as Django's test client does, without closing the
    connection at request start and end). Returns (status, headers, body)."""
    settings.ALLOWED_HOSTS = ["portal.test"]
    settings.SECURE_HSTS_SECONDS = 3600
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    app = {}

    def rebuild():
        """production's application, built now: middleware reads its settings when it is built."""
        app["wsgi"] = wsgi.Dispatcher(wsgi.portal, HeartbeatPings(wsgi.WebhookHandler()))

    def _call(method: str, path: str, *, host: str = "portal.test", scheme: str = "https", body: bytes = b""):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "portal.test",
            "SERVER_PORT": "443",
            "HTTP_HOST": host,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "192.0.2.10",
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(body)),
        }
        captured = {}

        def start_response(status, response_headers, exc_info=None):
            captured["status"], captured["headers"] = int(status.split()[0]), dict(response_headers)

        chunks = app["wsgi"](environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], captured["headers"], content

    rebuild()
    _call.rebuild = rebuild
    yield _call
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def url(heartbeat, action="") -> str:
    return f"/api/v1/heartbeats/{heartbeat.public_id}/{action}"


@pytest.fixture
def job(db):
    return heartbeats.create_heartbeat(name="Nightly backup", period=timedelta(minutes=5))


def pings_counted(method="GET", status="200") -> float:
    return REQUESTS.labels("heartbeats:ping", method, status)._value.get()


def test_production_serves_pings_through_the_fast_path():
    assert isinstance(wsgi.application.webhooks, HeartbeatPings)
    assert isinstance(wsgi.application.webhooks.fallback, wsgi.WebhookHandler)


def test_a_ping_is_one_statement_with_the_lean_handlers_headers(call, job, django_assert_num_queries):
    before = pings_counted()
    moment = timezone.now()
    with time_machine.travel(moment, tick=False), django_assert_num_queries(1):
        status, headers, body = call("GET", url(job))
    assert (status, body) == (200, b"OK\n")
    job.refresh_from_db()
    assert job.state == HeartbeatState.UP and job.ping_count == 1 and job.due_at == moment + timedelta(minutes=6)
    assert pings_counted() == before + 1
    # The same answer as the view gives through the lean Django handler (a 404 is the view's: compare its headers).
    _, view_headers, _ = call("GET", f"/api/v1/heartbeats/{uuid.uuid4()}/")
    assert set(headers) == set(view_headers)
    assert headers["Content-Type"] == "text/plain; charset=utf-8" and headers["Cache-Control"] == "no-store"
    assert headers["Strict-Transport-Security"] == "max-age=3600" and headers["X-Content-Type-Options"] == "nosniff"
    assert len(headers["X-Request-ID"]) == 32 and headers["Content-Length"] == "3"
    assert call("POST", url(job), body=b"backup done: 3.2 GB")[0] == 200
    assert call("HEAD", url(job))[0] == 200
    job.refresh_from_db()
    assert job.ping_count == 3


def test_every_other_case_reaches_the_view(call, job, settings):
    assert call("GET", f"/api/v1/heartbeats/{uuid.uuid4()}/")[:1] == (404,)
    assert call("PUT", url(job))[0] == 405
    assert call("GET", url(job), host="evil.test")[0] == 400  # ALLOWED_HOSTS
    settings.SECURE_SSL_REDIRECT = True
    call.rebuild()
    status, headers, _ = call("GET", url(job), scheme="http")
    assert status == 301 and headers["Location"] == f"https://portal.test{url(job)}"
    settings.SECURE_SSL_REDIRECT = False
    call.rebuild()
    # /fail opens the alert; the next ping (not the common case) resolves it.
    assert call("POST", url(job, "fail"))[0] == 200
    assert AlertGroup.objects.get().status == GroupStatus.TRIGGERED
    assert call("GET", url(job))[0] == 200
    assert AlertGroup.objects.get().status == GroupStatus.RESOLVED
    job.refresh_from_db()
    assert job.state == HeartbeatState.UP and not job.alert_open
    # Paused: the view records the ping and keeps it paused.
    Heartbeat.objects.filter(pk=job.pk).update(is_active=False)
    assert call("GET", url(job))[0] == 200
    job.refresh_from_db()
    assert job.state == HeartbeatState.PAUSED


def test_the_rate_limit_is_counted_in_the_row_and_a_refused_loop_costs_no_query(
    call, job, settings, django_assert_num_queries
):
    settings.HEARTBEAT_RATE_LIMIT_PER_MINUTE = 3
    start = timezone.now().replace(second=5, microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(start, tick=False):
        assert [call("GET", url(job))[0] for _ in range(3)] == [200, 200, 200]
        status, headers, body = call("GET", url(job))
        assert status == 429 and headers["Retry-After"] == "55" and b"slow down" in body
        with django_assert_num_queries(0):
            assert call("GET", url(job))[0] == 429
            assert call("POST", url(job, "fail"))[0] == 429  # /start and /fail count against the same limit
        job.refresh_from_db()
        assert job.ping_count == 3 and job.rate_count == 3 and not job.alert_open
    with time_machine.travel(start + timedelta(minutes=1), tick=False):  # the next minute: allowed again
        assert call("GET", url(job))[0] == 200
    job.refresh_from_db()
    assert job.ping_count == 4 and job.rate_count == 1

"""The portal watches itself: /healthz (database, broker, every timer's last tick, the page outbox), /metrics in
Prometheus' text format behind a token or an address list, tick heartbeats written by the workers, and the
dead-man's switch pinged only while healthy (against a loopback HTTP server)."""

import io
import json
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from unittest import mock

import pytest
import time_machine
from django.core import signals
from django.db import close_old_connections
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from incidentportal import wsgi
from incidentportal.celery import beat_ticks
from incidents.alerting.models import IntegrationError
from oncall.health import deadman, heartbeats
from oncall.health import tasks as health_tasks
from oncall.health.models import Heartbeat
from oncall.paging import tasks as paging_tasks
from oncall.paging.models import Notification, Page
from oncall.paging.services import engine as paging_engine
from tests.api.factories import make_integration
from tests.factories import declare
from tests.paging.factories import paged_team

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789"


def all_ticks_ran(at=None):
    heartbeats.record([name for name, _task, _seconds in beat_ticks()], at=at)


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(families, name, **labels):
    for sample in families[name].samples:
        if sample.name in (name, name + "_total") and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    raise AssertionError(f"no sample {name} {labels}")


# --- /healthz ----------------------------------------------------------------------------------------------------


def test_healthz_is_200_when_everything_runs(client):
    all_ticks_ran()
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "timers", "outbox"}
    assert body["checks"]["timers"]["timers"]["paging-escalation-tick"]["state"] == "ok"
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_timer_that_stopped_makes_healthz_503_after_two_of_its_intervals(client, settings):
    settings.TIMER_TICK_SECONDS = 2
    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        all_ticks_ran()
        traveller.shift(timedelta(seconds=3.9))
        assert client.get("/healthz").status_code == 200
        heartbeats.record(["paging-outbox-tick"])  # the others keep running; the escalation tick stopped
        traveller.shift(timedelta(seconds=0.2))
        response = client.get("/healthz")
    assert response.status_code == 503
    timers = response.json()["checks"]["timers"]["timers"]
    assert timers["paging-escalation-tick"]["state"] == "stale"
    assert timers["paging-escalation-tick"]["age_seconds"] == pytest.approx(4.1)
    assert timers["paging-outbox-tick"]["state"] == "ok"


def test_a_paging_timer_that_never_ran_fails_an_hourly_one_is_pending(client):
    heartbeats.record([name for name, _t, s in beat_ticks() if name != "paging-escalation-tick" and s < 3600])
    body = client.get("/healthz").json()
    timers = body["checks"]["timers"]["timers"]
    assert timers["paging-escalation-tick"]["state"] == "never" and body["status"] == "unhealthy"
    Heartbeat.objects.filter(name="alerting-prune-seen-signatures").delete()
    heartbeats.record(["paging-escalation-tick"])
    body = client.get("/healthz").json()
    assert body["checks"]["timers"]["timers"]["alerting-prune-seen-signatures"]["state"] == "pending"
    assert body["status"] == "ok"


def test_a_stuck_outbox_makes_healthz_503(client, responder, settings):
    settings.HEALTH_OUTBOX_MAX_AGE_SECONDS = 60
    team = paged_team(oncall_channels=("email",))
    declare(by=responder, level="P1", services=[team.service])
    all_ticks_ran()
    Notification.objects.filter(status="pending").update(scheduled_for=timezone.now() - timedelta(seconds=61))
    response = client.get("/healthz")
    assert response.status_code == 503
    outbox = response.json()["checks"]["outbox"]
    assert outbox["ok"] is False and outbox["due_unsent"] >= 1 and outbox["oldest_age_seconds"] >= 61


def test_an_unreachable_broker_makes_healthz_503(client, settings):
    all_ticks_ran()
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


def test_healthz_answers_get_and_head_only(client):
    all_ticks_ran()
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


# --- heartbeats --------------------------------------------------------------------------------------------------


def test_a_tick_run_by_celery_records_its_heartbeat(settings):
    moment = timezone.now()
    with time_machine.travel(moment, tick=False):
        paging_tasks.escalation_tick.apply()
    assert Heartbeat.objects.get(name="paging-escalation-tick").last_beat_at == moment
    assert not Heartbeat.objects.filter(name="paging-outbox-tick").exists()


def test_a_tick_that_fails_records_nothing(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(paging_engine, "run_escalation_tick", broken)
    assert paging_tasks.escalation_tick.apply().failed()
    assert not Heartbeat.objects.filter(name="paging-escalation-tick").exists()


# --- /metrics ----------------------------------------------------------------------------------------------------


def test_metrics_are_off_until_a_token_or_addresses_are_set(client):
    response = client.get("/metrics")
    assert response.status_code == 403 and b"METRICS_BEARER_TOKEN" in response.content


def test_metrics_need_the_token(client, settings):
    settings.METRICS_BEARER_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    openmetrics = client.get(
        "/metrics",
        headers={"authorization": f"Bearer {TOKEN}", "accept": "application/openmetrics-text; version=1.0.0"},
    )
    assert openmetrics["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.content.rstrip().endswith(b"# EOF")


def test_metrics_from_an_allowed_address(client, settings):
    settings.METRICS_ALLOWED_IPS = "10.0.0.0/8, ::1"
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403


def test_metrics_report_paging_webhooks_requests_and_timers(client, settings, responder, django_assert_max_num_queries):
    settings.METRICS_BEARER_TOKEN = TOKEN
    all_ticks_ran()
    team = paged_team(oncall_channels=("email",))
    incident = declare(by=responder, level="P1", services=[team.service])
    page = Page.objects.get(incident=incident)
    Page.objects.filter(pk=page.pk).update(started_at=timezone.now() - timedelta(minutes=7))
    Notification.objects.filter(status="pending").update(scheduled_for=timezone.now() - timedelta(seconds=30))
    integration, _ = make_integration("pagerduty", name="Datadog")
    for _ in range(3):
        IntegrationError.objects.create(
            integration=integration, kind="pagerduty", status_code=400, code="x", message="m"
        )
    client.get("/healthz")
    with django_assert_max_num_queries(12):
        response = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    families = _families(response.content.decode())
    assert _value(families, "portal_webhook_errors", integration="Datadog", kind="pagerduty") == 3
    assert _value(families, "portal_paging_unacknowledged_pages") == 1
    assert _value(families, "portal_paging_oldest_unacknowledged_page_seconds") >= 7 * 60
    assert _value(families, "portal_paging_notifications_due_unsent") >= 1
    assert _value(families, "portal_paging_oldest_due_unsent_seconds") >= 30
    assert _value(families, "portal_paging_send_lateness_seconds", quantile="0.99") >= 0
    assert _value(families, "portal_http_requests", handler="healthz", method="GET", status="200") >= 1
    assert _value(families, "portal_health_check_ok", check="database") == 1
    assert _value(families, "portal_timer_last_tick_age_seconds", timer="paging-escalation-tick") >= 0


def test_send_lateness_is_measured_from_sent_notifications(client, settings, responder):
    settings.METRICS_BEARER_TOKEN = TOKEN
    team = paged_team(oncall_channels=("email",))
    declare(by=responder, level="P1", services=[team.service])
    now = timezone.now()
    Notification.objects.update(
        status="sent", scheduled_for=now - timedelta(seconds=10), sent_at=now - timedelta(seconds=4)
    )
    families = _families(client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).content.decode())
    assert _value(families, "portal_paging_send_lateness_seconds", quantile="1.0") == pytest.approx(6)


# --- dead-man's switch -------------------------------------------------------------------------------------------


class _Monitor(BaseHTTPRequestHandler):
    hits: list = []
    status = 200

    def do_GET(self):  # noqa: N802 - http.server's name
        _Monitor.hits.append(self.path)
        self.send_response(_Monitor.status)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def monitor(settings):
    _Monitor.hits, _Monitor.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Monitor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.DEADMAN_SWITCH_URL = f"http://127.0.0.1:{server.server_port}/ping/portal"
    settings.DEADMAN_SWITCH_TIMEOUT_SECONDS = 5
    yield _Monitor
    server.shutdown()
    server.server_close()


def test_deadman_switch_is_pinged_while_healthy(monitor):
    all_ticks_ran()
    assert deadman.ping_if_healthy() is True
    assert monitor.hits == ["/ping/portal"]


def test_deadman_switch_is_not_pinged_when_a_timer_stopped(monitor):
    all_ticks_ran(at=timezone.now() - timedelta(minutes=5))
    assert deadman.ping_if_healthy() is False
    assert monitor.hits == []


def test_a_monitor_that_answers_500_is_logged_not_raised(monitor, caplog):
    all_ticks_ran()
    monitor.status = 500
    assert deadman.ping_if_healthy() is False
    assert monitor.hits == ["/ping/portal"] and "ping failed" in caplog.text


def test_two_beats_ticking_within_one_minute_ping_the_switch_once_a_minute(monitor):
    """A beat on each worker host: the tick runs twice a minute, the switch hears from the portal once a minute."""
    with (
        mock.patch.object(health_tasks.send_deadman_ping, "delay", side_effect=deadman.ping),
        time_machine.travel(timezone.now(), tick=False) as traveller,
    ):
        all_ticks_ran()
        assert health_tasks.deadman_tick() is True
        traveller.shift(timedelta(seconds=20))  # the other beat's tick, 20 s later
        all_ticks_ran()
        assert health_tasks.deadman_tick() is False
        assert monitor.hits == ["/ping/portal"]
        traveller.shift(timedelta(seconds=40))  # the first beat again, a minute after its ping
        all_ticks_ran()
        assert health_tasks.deadman_tick() is True
        traveller.shift(timedelta(seconds=20))
        all_ticks_ran()
        assert health_tasks.deadman_tick() is False
    assert monitor.hits == ["/ping/portal"] * 2


def test_a_single_beats_tick_a_little_early_still_pings(monitor):
    with (
        mock.patch.object(health_tasks.send_deadman_ping, "delay", side_effect=deadman.ping),
        time_machine.travel(timezone.now(), tick=False) as traveller,
    ):
        all_ticks_ran()
        assert health_tasks.deadman_tick() is True
        traveller.shift(timedelta(seconds=55))
        all_ticks_ran()
        assert health_tasks.deadman_tick() is True
    assert monitor.hits == ["/ping/portal"] * 2


def test_the_deadman_tick_is_scheduled_every_minute():
    assert ("health-deadman-switch", "oncall.health.tasks.deadman_tick", 60.0) in beat_ticks()


def test_healthz_and_metrics_are_served_by_the_lean_wsgi_handler(settings):
    settings.ALLOWED_HOSTS = ["portal.test"]
    settings.METRICS_BEARER_TOKEN = TOKEN
    all_ticks_ran()
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        answers = {}
        for path, extra in [("/healthz", {}), ("/metrics", {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})]:
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": path,
                "QUERY_STRING": "",
                "SERVER_NAME": "portal.test",
                "SERVER_PORT": "80",
                "HTTP_HOST": "portal.test",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "192.0.2.10",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(b""),
                "wsgi.errors": sys.stderr,
                **extra,
            }
            captured = {}

            def start_response(status, headers, exc_info=None, captured=captured):
                captured["status"], captured["headers"] = int(status.split()[0]), dict(headers)

            body = b"".join(wsgi.application(environ, start_response))
            answers[path] = (captured["status"], captured["headers"], body)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    status, headers, body = answers["/healthz"]
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert "Set-Cookie" not in headers  # no session middleware on this path
    status, _headers, body = answers["/metrics"]
    assert status == 200 and b'portal_http_requests_total{handler="healthz",method="GET",status="200"}' in body

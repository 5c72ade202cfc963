"""Heartbeat monitors: ping URLs, missed deadlines opening alerts routed like any other, the next ping resolving."""

import uuid
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from incidents.alerting import heartbeats
from incidents.alerting.models import (
    AlertGroup,
    GroupStatus,
    Heartbeat,
    HeartbeatState,
    IntegrationKind,
    RouteAction,
)
from incidents.alerting.tasks import heartbeat_tick
from incidents.models import Incident
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db


def ping_url(heartbeat, action=""):
    url = reverse("heartbeats:ping", args=[heartbeat.public_id])
    return url + action


@pytest.fixture
def backup_job(db):
    return heartbeats.create_heartbeat(
        name="Nightly backup", service=ServiceFactory(name="Database", slug="database"), period=timedelta(minutes=5)
    )


def test_an_unknown_heartbeat_url_is_404_in_plain_text(client):
    response = client.get(f"/api/v1/heartbeats/{uuid.uuid4()}/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/plain") and b"No heartbeat" in response.content


def test_a_new_heartbeat_waits_for_its_first_ping_and_never_alerts_before_it(backup_job):
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert heartbeats.open_missed_alerts() == 0
    backup_job.refresh_from_db()
    assert backup_job.state == HeartbeatState.NEW and not AlertGroup.objects.exists()


def test_ping_by_get_or_post_sets_the_next_deadline(client, backup_job):
    moment = timezone.now()
    with time_machine.travel(moment, tick=False):
        assert client.get(ping_url(backup_job)).content == b"OK\n"
    backup_job.refresh_from_db()
    assert backup_job.state == HeartbeatState.UP
    assert backup_job.last_ping_at == moment and backup_job.due_at == moment + timedelta(minutes=6)
    assert client.post(ping_url(backup_job), data=b"backup done: 3.2 GB", content_type="text/plain").status_code == 200
    backup_job.refresh_from_db()
    assert backup_job.ping_count == 2


def test_a_missed_heartbeat_opens_one_alert_and_the_next_ping_resolves_it(client, backup_job):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.get(ping_url(backup_job))
    with time_machine.travel(start + timedelta(minutes=5, seconds=59), tick=False):
        assert heartbeats.open_missed_alerts() == 0  # inside the grace time
    with time_machine.travel(start + timedelta(minutes=6, seconds=1), tick=False):
        assert heartbeats.open_missed_alerts() == 1
        assert heartbeats.open_missed_alerts() == 0  # never twice
    group = AlertGroup.objects.get()
    assert group.integration.kind == IntegrationKind.HEARTBEAT
    assert group.status == GroupStatus.TRIGGERED and group.service.slug == "database"
    assert "Heartbeat missed: Nightly backup" in group.summary
    assert group.labels == {"heartbeat": "Nightly backup", "service": "database"}
    backup_job.refresh_from_db()
    assert backup_job.state == HeartbeatState.LATE and backup_job.alert_open

    with time_machine.travel(start + timedelta(minutes=9), tick=False):
        assert client.get(ping_url(backup_job)).status_code == 200
    group.refresh_from_db()
    backup_job.refresh_from_db()
    assert group.status == GroupStatus.RESOLVED and group.resolved_at is not None
    assert backup_job.state == HeartbeatState.UP and not backup_job.alert_open
    assert backup_job.due_at == start + timedelta(minutes=15)


def test_the_celery_tick_opens_missed_alerts(client, backup_job):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.get(ping_url(backup_job))
    with time_machine.travel(start + timedelta(minutes=7), tick=False):
        assert heartbeat_tick() == 1
    assert AlertGroup.objects.filter(status=GroupStatus.TRIGGERED).count() == 1


def test_fail_opens_the_alert_at_once_and_start_shows_a_running_job(client, backup_job):
    assert client.post(ping_url(backup_job, "start")).status_code == 200
    backup_job.refresh_from_db()
    assert backup_job.state == HeartbeatState.RUNNING and backup_job.last_start_at is not None
    assert client.post(ping_url(backup_job, "fail")).status_code == 200
    backup_job.refresh_from_db()
    assert backup_job.state == HeartbeatState.FAILED and backup_job.alert_open
    group = AlertGroup.objects.get()
    assert group.status == GroupStatus.TRIGGERED and "reported failure" in group.summary
    client.post(ping_url(backup_job, "fail"))  # failing again changes nothing twice
    assert AlertGroup.objects.count() == 1 and AlertGroup.objects.get().event_count == 1
    client.get(ping_url(backup_job))
    assert AlertGroup.objects.get().status == GroupStatus.RESOLVED


def test_a_missed_heartbeat_is_routed_like_any_alert_and_can_declare(client, backup_job):
    integration = heartbeats.heartbeat_integration()
    integration.default_action = RouteAction.DECLARE
    integration.save()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.get(ping_url(backup_job))
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        heartbeats.open_missed_alerts()
    incident = Incident.objects.get()
    assert [service.slug for service in incident.services.all()] == ["database"]
    assert AlertGroup.objects.get().incident == incident


def test_a_paused_heartbeat_never_alerts_and_stays_paused_when_pinged(client, backup_job):
    client.get(ping_url(backup_job))
    Heartbeat.objects.filter(pk=backup_job.pk).update(is_active=False)
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        assert heartbeats.open_missed_alerts() == 0
        client.get(ping_url(backup_job))
    backup_job.refresh_from_db()
    assert backup_job.state == HeartbeatState.PAUSED and backup_job.due_at is None


def test_pings_are_rate_limited_per_heartbeat(client, backup_job, settings):
    settings.HEARTBEAT_RATE_LIMIT_PER_MINUTE = 3
    statuses = [client.get(ping_url(backup_job)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get(ping_url(backup_job))
    assert int(refused["Retry-After"]) > 0 and b"slow down" in refused.content
    other = heartbeats.create_heartbeat(name="Invoices", period=timedelta(hours=1))
    assert client.get(ping_url(other)).status_code == 200


def test_other_methods_are_refused(client, backup_job):
    assert client.put(ping_url(backup_job)).status_code == 405
    assert client.delete(ping_url(backup_job)).status_code == 405


@pytest.mark.parametrize(
    ("period", "grace", "field"),
    [
        (None, timedelta(minutes=1), "period"),
        (timedelta(seconds=5), timedelta(minutes=1), "period"),
        (timedelta(days=40), timedelta(minutes=1), "period"),
        (timedelta(minutes=5), timedelta(days=30), "grace"),
        (timedelta(minutes=5), timedelta(minutes=-1), "grace"),
    ],
)
def test_a_schedule_out_of_bounds_is_refused_naming_the_field(period, grace, field):
    with pytest.raises(heartbeats.HeartbeatError) as error:
        heartbeats.create_heartbeat(name="bad", period=period, grace=grace)
    assert error.value.field == field
    assert not Heartbeat.objects.exists()


def test_managers_create_heartbeats_in_the_admin_and_see_the_ping_url(client, manager, settings):
    from django.contrib.auth.models import Permission

    manager.user_permissions.add(*Permission.objects.filter(codename__endswith="_heartbeat"))
    client.force_login(manager)
    refused = client.post(
        "/admin/alerting/heartbeat/add/",
        {"name": "Sync", "period": "00:00:05", "grace": "00:01:00", "severity": "error"},
    )
    assert refused.status_code == 200 and "between 30 seconds and 31 days" in refused.content.decode()
    created = client.post(
        "/admin/alerting/heartbeat/add/",
        {"name": "Sync", "period": "00:10:00", "grace": "00:01:00", "severity": "error", "is_active": "on"},
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    heartbeat = Heartbeat.objects.get(name="Sync")
    assert heartbeat.state == HeartbeatState.NEW
    page = client.get(f"/admin/alerting/heartbeat/{heartbeat.pk}/change/").content.decode()
    assert f"{settings.SITE_URL}/api/v1/heartbeats/{heartbeat.public_id}/" in page

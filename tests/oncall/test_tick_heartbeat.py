"""The escalation tick's own lateness is a heartbeat monitor: each successful run pings it (oncall.health), managers
see it in the heartbeat list beside the jobs' heartbeats, late and then down when the tick stops, and a missed tick
opens an alert group through the heartbeat integration (routed like any missed heartbeat), from the heartbeat tick or,
when the timers have stopped altogether, from /healthz. The next run resolves it. Time is controlled throughout."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from incidents.alerting import heartbeats as portal_heartbeats
from incidents.alerting.models import AlertGroup, GroupStatus, Heartbeat, HeartbeatState, RouteAction
from incidents.alerting.tasks import heartbeat_tick
from incidents.models import Incident
from oncall.health.heartbeats import WATCHED_TICKS
from oncall.paging import tasks as paging_tasks
from oncall.paging.services import engine as paging_engine

pytestmark = pytest.mark.django_db

NAME = WATCHED_TICKS["paging-escalation-tick"]


def escalation_tick_at(moment):
    with time_machine.travel(moment, tick=False):
        assert paging_tasks.escalation_tick.apply().successful()


def tick_heartbeat() -> Heartbeat:
    return Heartbeat.objects.get(tick="paging-escalation-tick")


def test_the_first_run_makes_the_heartbeat_and_each_run_pings_it_in_one_statement(django_assert_num_queries):
    start = timezone.now()
    escalation_tick_at(start)
    heartbeat = tick_heartbeat()
    assert heartbeat.name == NAME and heartbeat.state == HeartbeatState.UP
    assert heartbeat.last_ping_at == start and heartbeat.due_at == start + timedelta(seconds=60)
    with django_assert_num_queries(1):
        portal_heartbeats.tick_ran("paging-escalation-tick", name=NAME, now=start + timedelta(seconds=2))
    escalation_tick_at(start + timedelta(seconds=4))
    heartbeat.refresh_from_db()
    assert heartbeat.ping_count == 3 and heartbeat.due_at == start + timedelta(seconds=64)


def test_a_failing_tick_does_not_ping_its_heartbeat(monkeypatch):
    start = timezone.now()
    escalation_tick_at(start)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(paging_engine, "run_escalation_tick", broken)
    with time_machine.travel(start + timedelta(seconds=2), tick=False):
        assert paging_tasks.escalation_tick.apply().failed()
    assert tick_heartbeat().ping_count == 1


def test_a_stopped_tick_goes_late_then_down_for_managers_and_alerts_once_then_resolves(client, manager):
    manager.user_permissions.add(*Permission.objects.filter(codename__endswith="_heartbeat"))
    client.force_login(manager)
    start = timezone.now()
    escalation_tick_at(start)

    def listed(at) -> str:
        with time_machine.travel(at, tick=False):
            page = client.get("/admin/alerting/heartbeat/").content.decode()
        assert NAME in page
        return page

    assert '<span class="heartbeat-up">Up</span>' in listed(start + timedelta(seconds=30))
    assert '<span class="heartbeat-late">Late: no ping for 75 s</span>' in listed(start + timedelta(seconds=75))
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        assert heartbeat_tick() == 0  # within period + grace
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert heartbeat_tick() == 1
        assert heartbeat_tick() == 0  # once
    group = AlertGroup.objects.get()
    assert group.status == GroupStatus.TRIGGERED and f"Heartbeat missed: {NAME}" in group.summary
    assert group.integration.name == portal_heartbeats.HEARTBEAT_INTEGRATION
    assert '<span class="heartbeat-down">Down: no ping for 3 min</span>' in listed(start + timedelta(minutes=3))
    # The tick runs again: the alert resolves, the heartbeat is up.
    escalation_tick_at(start + timedelta(minutes=4))
    group.refresh_from_db()
    assert group.status == GroupStatus.RESOLVED
    heartbeat = tick_heartbeat()
    assert heartbeat.state == HeartbeatState.UP and not heartbeat.alert_open
    assert '<span class="heartbeat-up">Up</span>' in listed(start + timedelta(minutes=4, seconds=10))


def test_when_every_timer_stopped_healthz_opens_the_alert_routed_like_any_heartbeat(client):
    integration = portal_heartbeats.heartbeat_integration()
    integration.default_action = RouteAction.DECLARE
    integration.save()
    start = timezone.now()
    escalation_tick_at(start)
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        assert client.get("/healthz").status_code == 503  # the timers are stale
        client.get("/healthz")
    group = AlertGroup.objects.get()  # one, however often /healthz is asked
    assert group.status == GroupStatus.TRIGGERED and NAME in group.summary
    assert Incident.objects.get() == group.incident  # declared, as this integration's routing says


def test_a_tick_heartbeat_has_no_ping_url_and_keeps_its_row_when_the_name_is_taken(client):
    portal_heartbeats.create_heartbeat(name=NAME, period=timedelta(minutes=5))  # a manager's, same name
    escalation_tick_at(timezone.now())
    heartbeat = tick_heartbeat()
    assert heartbeat.name == f"{NAME} [paging-escalation-tick]"
    for action in ("", "start", "fail"):
        assert client.get(f"/api/v1/heartbeats/{heartbeat.public_id}/{action}").status_code == 404
    assert tick_heartbeat().ping_count == 1

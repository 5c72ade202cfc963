"""Concurrent delivery of one alert against the real database: the partial unique index, not a
check-then-insert, decides which request opens the group."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from incidents.alerting.models import AlertEvent, AlertGroup, RouteAction
from incidents.models import Incident, TimelineEntry
from tests.factories import ServiceFactory

from .factories import fixture_json, make_integration

THREADS = 50


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_50_concurrent_identical_triggers_make_one_group_and_one_incident():
    service = ServiceFactory(slug="datapipe")
    integration, key = make_integration("pagerduty", default_service=service, default_action=RouteAction.DECLARE)
    body = fixture_json("pagerduty_trigger.json")
    body["routing_key"] = key
    payload = json.dumps(body)
    barrier = threading.Barrier(THREADS)
    statuses, errors = [], []

    def deliver():
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = client.post(
                "/api/v1/integrations/pagerduty/v2/enqueue", data=payload, content_type="application/json"
            )
            statuses.append(response.status_code)
        except Exception as exc:  # surfaced below; a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert statuses == [202] * THREADS
    assert AlertGroup.objects.filter(integration=integration).count() == 1
    group = AlertGroup.objects.get(integration=integration)
    assert group.event_count == THREADS
    assert AlertEvent.objects.filter(integration=integration, group=group).count() == THREADS
    assert Incident.objects.count() == 1
    assert group.incident == Incident.objects.get()
    assert TimelineEntry.objects.filter(incident=group.incident, kind="alert").count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_batches_for_one_service_declare_at_most_one_incident():
    """Different keys, same service, all critical: the service row lock makes the later batches attach."""
    service = ServiceFactory(slug="checkout")
    integration, key = make_integration("generic", default_service=service, default_action=RouteAction.DECLARE)
    barrier = threading.Barrier(10)
    statuses = []

    def deliver(n):
        try:
            client = Client()
            body = {"events": [{"dedup_key": f"k{n}-{i}", "summary": "down", "severity": "critical"} for i in range(5)]}
            barrier.wait(timeout=30)
            response = client.post(
                "/api/v1/integrations/generic/",
                data=json.dumps(body),
                content_type="application/json",
                headers={"authorization": f"Bearer {key}"},
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [202] * 10
    assert AlertGroup.objects.count() == 50
    assert Incident.objects.count() == 1
    assert set(AlertGroup.objects.values_list("incident", flat=True)) == {Incident.objects.get().pk}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_identical_triggers_on_the_single_statement_path_make_one_group():
    """Record-only routing takes the one-statement path (CTE upsert + event insert); it folds the same way."""
    integration, key = make_integration("pagerduty", default_action=RouteAction.RECORD)
    body = fixture_json("pagerduty_trigger.json")
    body["routing_key"] = key
    payload = json.dumps(body)
    barrier = threading.Barrier(20)
    statuses = []

    def deliver():
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = client.post(
                "/api/v1/integrations/pagerduty/v2/enqueue", data=payload, content_type="application/json"
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [202] * 20
    group = AlertGroup.objects.get(integration=integration)
    assert group.event_count == 20
    assert AlertEvent.objects.filter(group=group).count() == 20
    assert Incident.objects.count() == 0

"""Which rows an alert takes locks on (found by bench/cluster.py's alert storm, where declarations queued behind
chains of service-row locks): a new alert group for a service with an open incident attaches without the service
lock; only a possible declaration takes it, and still lets one batch declare for a service, not two."""

import threading

import pytest
from django.db import connection, transaction

from incidents.alerting.models import AlertGroup
from incidents.models import Incident, Service
from tests.api.factories import make_integration
from tests.factories import ServiceFactory, declare

pytestmark = pytest.mark.django_db(transaction=True)


class ServiceLockHeld:
    """Another transaction (another web process's batch) holds the service's row lock until the block ends."""

    def __init__(self, service):
        self.service = service
        self.locked, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self):
        try:
            with transaction.atomic():
                # The lock a batch that may declare an incident takes (ingestion._link_new_groups).
                Service.objects.select_for_update(no_key=True).get(pk=self.service.pk)
                self.locked.set()
                self.release.wait(30)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        assert self.locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a wait for the lock fails the request (503) within 2 s
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def _post(client, key, dedup_key, service):
    return client.post(
        "/api/v1/integrations/generic/",
        {"dedup_key": dedup_key, "summary": f"{service.slug} down", "severity": "critical", "service": service.slug},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )


def test_an_alert_attaches_to_the_open_incident_while_another_batch_holds_the_service_lock(client):
    service = ServiceFactory()
    incident = declare(level="P2", services=[service])
    _integration, key = make_integration("generic", default_action="declare")
    with ServiceLockHeld(service):
        response = _post(client, key, "checkout-5xx", service)
    assert response.status_code == 202, response.content
    assert AlertGroup.objects.get(dedup_key="checkout-5xx").incident == incident


def test_an_alert_that_may_declare_waits_for_the_service_lock(client):
    service = ServiceFactory()
    _integration, key = make_integration("generic", default_action="declare")
    with ServiceLockHeld(service):
        response = _post(client, key, "checkout-5xx", service)
    assert response.status_code == 503  # it waited for the lock (lock_timeout), and nothing was stored
    assert not AlertGroup.objects.filter(dedup_key="checkout-5xx").exists()
    assert not Incident.objects.filter(services=service).exists()


def test_two_batches_for_a_service_with_no_incident_declare_one_between_them(client):
    service = ServiceFactory()
    _integration, key = make_integration("generic", default_action="declare")
    assert _post(client, key, "first", service).status_code == 202
    assert _post(client, key, "second", service).status_code == 202
    incident = Incident.objects.get(services=service)
    assert set(AlertGroup.objects.values_list("dedup_key", "incident")) == {
        ("first", incident.pk),
        ("second", incident.pk),
    }

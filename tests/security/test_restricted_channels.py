"""Restricted incidents outside the web pages: status page subscribers are never emailed about them, even for
an external update published by mistake, while the same update on a public incident is mailed."""

import pytest
from django.core import mail
from django.utils import timezone

from incidents.services.updates import post_status_update
from incidents.statuspage.models import Subscriber, UpdateDelivery
from incidents.statuspage.tasks import send_update_emails
from tests.factories import SecurityFactory, ServiceFactory, declare

pytestmark = pytest.mark.django_db


def _publish(incident, by, service, title):
    return post_status_update(
        incident=incident,
        kind="external",
        status="investigating",
        by=by,
        title=title,
        description=title,
        affected_services=[service],
        publish=True,
    )


def test_subscribers_get_public_updates_but_never_restricted_ones(django_capture_on_commit_callbacks, monkeypatch):
    security = SecurityFactory()
    service = ServiceFactory(is_public=True)
    Subscriber.objects.create(email="user@example.com", all_services=True, confirmed_at=timezone.now())
    public = declare(by=security, title="Public outage", services=[service])
    secret = declare(by=security, title="Zebracorn breach", services=[service], is_restricted=True)
    sent = []
    monkeypatch.setattr(send_update_emails, "delay", lambda update_id: sent.append(send_update_emails(update_id)))
    with django_capture_on_commit_callbacks(execute=True):
        public_update = _publish(public, security, service, "Checkout errors")
        secret_update = _publish(secret, security, service, "Zebracorn breach notice")
    assert UpdateDelivery.objects.filter(update=public_update).count() == 1
    assert not UpdateDelivery.objects.filter(update=secret_update).exists()
    bodies = [m.subject + m.body for m in mail.outbox]
    assert any("Checkout errors" in body for body in bodies)
    assert not any("Zebracorn" in body for body in bodies)

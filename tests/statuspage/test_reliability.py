"""Status page emails with real Celery workers: the same send task delivered several times, to two workers at
once, mails each subscriber exactly once (the delivery row is claimed with SKIP LOCKED and marked in the same
transaction). Bounded: every wait has a timeout and every process is killed."""

from collections import Counter

import pytest
from django.utils import timezone

from incidents.statuspage.models import DeliveryState, Subscriber, UpdateDelivery
from tests.factories import ResponderFactory, ServiceFactory, declare
from tests.reliability.conftest import make_cluster, redis_client  # noqa: F401 - fixtures
from tests.reliability.harness import wait_until

from .factories import post_update
from .mail_backend import read_mail_log

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SUBSCRIBERS = 40


def test_duplicated_send_messages_on_two_workers_mail_each_subscriber_once(make_cluster, tmp_path):  # noqa: F811
    from incidentportal.celery import app

    mail_log = tmp_path / "mail.log"
    now = timezone.now()
    Subscriber.objects.bulk_create(
        Subscriber(email=f"reader{n}@example.com", confirmed_at=now) for n in range(SUBSCRIBERS)
    )
    responder = ResponderFactory()
    incident = declare(by=responder, level="P1", services=[ServiceFactory(name="API")])

    cluster = make_cluster(
        EMAIL_BACKEND="tests.statuspage.mail_backend.RecordingEmailBackend", STATUSPAGE_MAIL_LOG=str(mail_log)
    )
    cluster.worker("a", queues="notifications")
    cluster.worker("b", queues="notifications")
    update = post_update(incident, by=responder, title="API errors")  # its own wake-up goes out on commit
    for n in range(4):  # and the broker "redelivers" it, twice with the same message id
        app.send_task(
            "incidents.statuspage.tasks.send_update_emails",
            args=[update.pk],
            queue="notifications",
            task_id=f"same-{n // 2}",
        )

    def settled():
        return not UpdateDelivery.objects.filter(update=update, state=DeliveryState.PENDING).exists()

    wait_until(settled, timeout=120, message="all deliveries sent")
    lines = read_mail_log(mail_log)
    per_address = Counter(to for _pid, to, _subject in lines)
    assert len(per_address) == SUBSCRIBERS
    assert set(per_address.values()) == {1}, [address for address, count in per_address.items() if count > 1]
    assert {subject for _pid, _to, subject in lines} == {"[Investigating] API errors"}
    assert UpdateDelivery.objects.filter(update=update, state=DeliveryState.SENT).count() == SUBSCRIBERS

import re
from datetime import UTC, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from incidents.models import Service
from incidents.profiles.zones import format_moment
from incidents.statuspage import services as statuspage_services
from incidents.statuspage import tasks
from incidents.statuspage.models import DeliveryState, Subscriber, UpdateDelivery
from tests.factories import SecurityFactory, ServiceFactory, declare

from .conftest import run_enqueued
from .factories import post_update

pytestmark = pytest.mark.django_db


def link_in(message, path_fragment):
    match = re.search(rf"https?://\S*{path_fragment}\S*", message.body)
    assert match, message.body
    return urlsplit(match.group(0)).path


def subscribe(client, django_capture_on_commit_callbacks, *, email, services=None):
    data = {"email": email, "scope": "some" if services else "all"}
    if services:
        data["services"] = [service.pk for service in services]
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/status/subscribe/", data)
    assert response.status_code == 302, response.content.decode()
    assert response["Location"] == "/status/subscribe/sent/"
    run_enqueued(callbacks)
    return response


def confirm_from_inbox(client, email):
    message = next(m for m in reversed(mail.outbox) if m.to == [email] and "Confirm" in m.subject)
    url = link_in(message, "/status/subscribe/confirm/")
    page = client.get(url)
    assert page.status_code == 200 and "Confirm subscription" in page.content.decode()
    response = client.post(url)
    assert response.status_code == 200, response.content.decode()
    return response


def publish(incident, django_capture_on_commit_callbacks, **fields):
    with django_capture_on_commit_callbacks() as callbacks:
        update = post_update(incident, **fields)
    run_enqueued(callbacks)
    return update


def to(email):
    return [m for m in mail.outbox if m.to == [email] and "Confirm" not in m.subject]


def test_subscriber_flow_end_to_end(client, responder, django_capture_on_commit_callbacks):
    api = ServiceFactory(name="API")
    subscribe(client, django_capture_on_commit_callbacks, email="Ada@Example.com")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    assert "You are subscribed" in confirm_from_inbox(client, "ada@example.com").content.decode()

    incident = declare(by=responder, level="P1", services=[api])
    publish(
        incident,
        django_capture_on_commit_callbacks,
        by=responder,
        title="API Performance Issues",
        description="Slow responses.",
        workaround="Retry.",
        affected_services=[api],
    )

    [message] = to("ada@example.com")
    assert message.subject == "[Investigating] API Performance Issues"
    # an email to many readers: the portal's one format, in UTC, named
    posted = incident.status_updates.get().posted_at
    assert f"Posted: {format_moment(posted, UTC)}\n" in message.body and format_moment(posted, UTC).endswith(" UTC")
    assert "Current status: Investigating" in message.body
    assert "Affected services:\n- API" in message.body
    assert "Workaround:\nRetry." in message.body
    unsubscribe_url = link_in(message, "/status/unsubscribe/")
    assert message.extra_headers["List-Unsubscribe"] == f"<http://localhost:8000{unsubscribe_url}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.alternatives[0][0]
    assert "[Investigating] API Performance Issues" in html and unsubscribe_url in html

    # One-click: a mail client POSTs with no cookie and no CSRF token.
    one_click = Client(enforce_csrf_checks=True)
    response = one_click.post(unsubscribe_url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "You are unsubscribed" in response.content.decode()
    assert not Subscriber.objects.get(email="ada@example.com").is_active

    publish(
        incident,
        django_capture_on_commit_callbacks,
        by=responder,
        status="monitoring",
        title="Fix deployed",
        description="Watching.",
    )
    assert len(to("ada@example.com")) == 1  # nothing more after unsubscribing


def test_unconfirmed_address_is_never_mailed(client, responder, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks, email="pending@example.com")
    incident = declare(by=responder, level="P1", services=[ServiceFactory()])
    publish(incident, django_capture_on_commit_callbacks, by=responder)
    assert to("pending@example.com") == []
    assert not UpdateDelivery.objects.exists()


def test_per_service_subscription_gets_only_its_services(client, responder, django_capture_on_commit_callbacks):
    api, web = ServiceFactory(name="API"), ServiceFactory(name="Web")
    subscribe(client, django_capture_on_commit_callbacks, email="api@example.com", services=[api])
    confirm_from_inbox(client, "api@example.com")
    subscribe(client, django_capture_on_commit_callbacks, email="all@example.com")
    confirm_from_inbox(client, "all@example.com")
    assert list(Subscriber.objects.get(email="api@example.com").services.all()) == [api]

    web_incident = declare(by=responder, level="P2", services=[web])
    publish(web_incident, django_capture_on_commit_callbacks, by=responder, title="Web is slow")
    api_incident = declare(by=responder, level="P1", services=[web])
    # The update's own affected services decide, over the incident's.
    publish(api_incident, django_capture_on_commit_callbacks, by=responder, title="API errors", affected_services=[api])

    assert [m.subject for m in to("api@example.com")] == ["[Investigating] API errors"]
    assert sorted(m.subject for m in to("all@example.com")) == [
        "[Investigating] API errors",
        "[Investigating] Web is slow",
    ]


def test_sending_twice_mails_once(client, responder, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks, email="once@example.com")
    confirm_from_inbox(client, "once@example.com")
    incident = declare(by=responder, level="P1", services=[ServiceFactory()])
    with django_capture_on_commit_callbacks() as callbacks:
        update = post_update(incident, by=responder)
    assert run_enqueued(callbacks) == 1
    tasks.send_update_emails(update.pk)  # the broker redelivers the same message
    tasks.send_update_emails(update.pk)
    assert statuspage_services.notify_subscribers(update) == 1  # even a second fan-out adds no row
    tasks.send_update_emails(update.pk)

    assert len(to("once@example.com")) == 1
    delivery = UpdateDelivery.objects.get(update=update)
    assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 1)


def test_drafts_internal_and_restricted_updates_are_never_mailed(client, responder, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks, email="watcher@example.com")
    confirm_from_inbox(client, "watcher@example.com")
    api = ServiceFactory()
    incident = declare(by=responder, level="P1", services=[api])
    publish(incident, django_capture_on_commit_callbacks, by=responder, publish=False, title="Draft")
    publish(incident, django_capture_on_commit_callbacks, by=responder, kind="internal")
    security = SecurityFactory()
    breach = declare(by=security, level="P0", services=[api], is_restricted=True)
    publish(breach, django_capture_on_commit_callbacks, by=security, title="Breach")
    assert to("watcher@example.com") == []
    assert not UpdateDelivery.objects.exists()


def test_incident_restricted_after_publishing_is_not_sent(client, responder, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks, email="late@example.com")
    confirm_from_inbox(client, "late@example.com")
    incident = declare(by=responder, level="P1", services=[ServiceFactory()])
    with django_capture_on_commit_callbacks():
        update = post_update(incident, by=responder)
    type(incident).objects.filter(pk=incident.pk).update(is_restricted=True)
    tasks.send_update_emails(update.pk)
    assert to("late@example.com") == []
    assert UpdateDelivery.objects.get(update=update).state == DeliveryState.SKIPPED


def test_asking_again_reveals_nothing_and_changes_nothing_until_confirmed(client, django_capture_on_commit_callbacks):
    api, web = ServiceFactory(name="API"), ServiceFactory(name="Web")
    subscribe(client, django_capture_on_commit_callbacks, email="known@example.com", services=[api])
    confirm_from_inbox(client, "known@example.com")
    with time_machine.travel(timezone.now() + timedelta(minutes=15)):
        fresh = subscribe(client, django_capture_on_commit_callbacks, email="new@example.com")
        again = subscribe(client, django_capture_on_commit_callbacks, email="known@example.com", services=[web])
        assert again["Location"] == fresh["Location"]
        subscriber = Subscriber.objects.get(email="known@example.com")
        assert list(subscriber.services.all()) == [api]  # a stranger cannot change it
        confirm_from_inbox(client, "known@example.com")
        assert list(subscriber.services.all()) == [web]


def test_repeated_requests_for_one_address_send_one_confirmation(client, django_capture_on_commit_callbacks):
    for _ in range(3):
        subscribe(client, django_capture_on_commit_callbacks, email="flood@example.com")
    assert len(mail.outbox) == 1


def test_confirmation_link_dies_with_unsubscribe(client, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks, email="bye@example.com")
    message = mail.outbox[0]
    confirm_url = link_in(message, "/status/subscribe/confirm/")
    assert client.post(confirm_url).status_code == 200
    assert client.post(confirm_url).status_code == 200  # a second click is harmless
    subscriber = Subscriber.objects.get(email="bye@example.com")
    from incidents.statuspage.emails import unsubscribe_url

    assert client.post(unsubscribe_url(subscriber).replace("http://localhost:8000", "")).status_code == 200
    response = client.post(confirm_url)
    assert response.status_code == 400 and "no longer valid" in response.content.decode()
    assert not Subscriber.objects.get(pk=subscriber.pk).is_active


def test_unsubscribe_get_asks_before_acting(client, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks, email="careful@example.com")
    confirm_from_inbox(client, "careful@example.com")
    from incidents.statuspage.emails import unsubscribe_url

    url = unsubscribe_url(Subscriber.objects.get(email="careful@example.com")).replace("http://localhost:8000", "")
    page = client.get(url)
    assert (
        page.status_code == 200
        and '<button type="submit" class="primary">Unsubscribe</button>' in page.content.decode()
    )
    assert Subscriber.objects.get(email="careful@example.com").is_active


@pytest.mark.parametrize(
    "url",
    [
        "/status/subscribe/confirm/not-a-token/",
        "/status/unsubscribe/not-a-token/",
        "/status/unsubscribe/eyJzIjoxLCJlIjoiYUBiLmMifQ:forged:signature/",
    ],
)
def test_bad_links_get_a_clear_400(client, url):
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 400
        assert "not valid" in response.content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"email": "not-an-address", "scope": "all"}, "email", "Enter a valid email address."),
        ({"email": "", "scope": "all"}, "email", "This field is required."),
        ({"email": "a@example.com" + "x" * 300, "scope": "all"}, "email", "at most 254 characters"),
        ({"email": "a@example.com", "scope": "some"}, "services", "Choose at least one service"),
        ({"email": "a@example.com", "scope": "some", "services": ["999999"]}, "services", "Select a valid choice"),
        ({"email": "a@example.com", "scope": "some", "services": ["x"]}, "services", "is not a valid value"),
        ({"email": "a@example.com", "scope": "everything"}, "scope", "Select a valid choice"),
    ],
)
def test_bad_input_gets_form_errors_not_500(client, data, field, message):
    ServiceFactory(name="API")
    hidden = ServiceFactory(name="Internal", is_public=False)
    response = client.post("/status/subscribe/", data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Subscriber.objects.exists()
    # A private service cannot be chosen either.
    response = client.post("/status/subscribe/", {"email": "a@example.com", "scope": "some", "services": [hidden.pk]})
    assert response.status_code == 400 and "services" in response.context["form"].errors


def test_subscribe_form_is_rate_limited_per_client(client):
    ServiceFactory(name="API")
    statuses = [
        client.post("/status/subscribe/", {"email": f"bot{n}@example.com", "scope": "all"}).status_code
        for n in range(12)
    ]
    assert statuses[:10] == [302] * 10
    assert statuses[10:] == [429, 429]
    assert (
        "Too many subscription requests"
        in client.post("/status/subscribe/", {"email": "x@example.com", "scope": "all"}).content.decode()
    )


def test_honeypot_gets_the_same_answer_and_no_email(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/status/subscribe/", {"email": "bot@example.com", "scope": "all", "website": "http://spam"}
        )
    assert response.status_code == 302 and callbacks == []
    assert not Subscriber.objects.exists()


def test_subscribe_page_lists_public_services_only(client):
    ServiceFactory(name="API")
    ServiceFactory(name="Internal batch", is_public=False)
    body = client.get("/status/subscribe/").content.decode()
    assert "API" in body and "Internal batch" not in body
    assert Service.objects.count() == 2


def test_failed_sends_are_retried_then_given_up(client, responder, django_capture_on_commit_callbacks, monkeypatch):
    subscribe(client, django_capture_on_commit_callbacks, email="flaky@example.com")
    confirm_from_inbox(client, "flaky@example.com")
    incident = declare(by=responder, level="P1", services=[ServiceFactory()])

    def refuse(self, *args, **kwargs):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)
    with django_capture_on_commit_callbacks() as callbacks:
        update = post_update(incident, by=responder)
    run_enqueued(callbacks)
    delivery = UpdateDelivery.objects.get(update=update)
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 1)
    assert "SMTP down" in delivery.last_error
    tasks.send_update_emails(update.pk)  # not due yet: nothing happens
    assert UpdateDelivery.objects.get(pk=delivery.pk).attempts == 1

    enqueued = []
    monkeypatch.setattr(tasks.send_update_emails, "delay", lambda update_id: enqueued.append(update_id))
    for minutes in (2, 10, 30, 120, 240):
        with time_machine.travel(timezone.now() + timedelta(minutes=minutes)):
            tasks.redeliver_tick()
            tasks.send_update_emails(update.pk)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, statuspage_services.MAX_DELIVERY_ATTEMPTS)
    assert enqueued and set(enqueued) == {update.pk}


def test_unconfirmed_addresses_are_forgotten_after_the_link_expires(client, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks, email="never@example.com")
    subscribe(client, django_capture_on_commit_callbacks, email="kept@example.com")
    confirm_from_inbox(client, "kept@example.com")
    with time_machine.travel(timezone.now() + timedelta(days=6)):
        assert tasks.purge_unconfirmed_tick() == 0
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert tasks.purge_unconfirmed_tick() == 1
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["kept@example.com"]


def test_links_do_not_carry_the_address(client, django_capture_on_commit_callbacks):
    import base64

    subscribe(client, django_capture_on_commit_callbacks, email="private.person@example.com")
    from incidents.statuspage.emails import unsubscribe_url

    confirm = link_in(mail.outbox[0], "/status/subscribe/confirm/")
    unsubscribe = unsubscribe_url(Subscriber.objects.get())
    for url in (confirm, unsubscribe):
        payload = url.rstrip("/").rsplit("/", 1)[-1].split(":")[0].lstrip(".")
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        assert b"private.person" not in decoded and "private.person" not in url


def test_a_line_break_in_the_title_cannot_break_email_headers(client, responder, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks, email="headers@example.com")
    confirm_from_inbox(client, "headers@example.com")
    incident = declare(by=responder, level="P1", services=[ServiceFactory()])
    publish(incident, django_capture_on_commit_callbacks, by=responder, title="Slow\r\nBcc: victim@example.com")
    [message] = to("headers@example.com")
    assert message.subject == "[Investigating] Slow Bcc: victim@example.com"
    assert "victim@example.com" not in message.bcc and message.recipients() == ["headers@example.com"]
    assert UpdateDelivery.objects.get().state == DeliveryState.SENT


def test_a_large_fan_out_continues_in_further_tasks(client, responder, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(tasks, "BATCH_SIZE", 2)
    now = timezone.now()
    Subscriber.objects.bulk_create(Subscriber(email=f"s{n}@example.com", confirmed_at=now) for n in range(5))
    incident = declare(by=responder, level="P1", services=[ServiceFactory()])
    with django_capture_on_commit_callbacks() as callbacks:
        update = post_update(incident, by=responder)
    continued = []
    monkeypatch.setattr(tasks.send_update_emails, "delay", lambda update_id: continued.append(update_id))
    # The update's own on-commit work is the email fan-out (the live pages' announcement of its timeline entry aside).
    [callback] = [c for c in callbacks if "send_update_emails" in repr(c)]
    tasks.send_update_emails(*callback.args)
    assert len(mail.outbox) == 2 and continued == [update.pk]
    tasks.send_update_emails(update.pk)
    tasks.send_update_emails(update.pk)
    assert len(mail.outbox) == 5 and continued == [update.pk] * 2


def test_manager_retries_failed_emails_from_admin(client, responder, django_capture_on_commit_callbacks, monkeypatch):
    from tests.factories import ManagerFactory

    subscribe(client, django_capture_on_commit_callbacks, email="retry@example.com")
    confirm_from_inbox(client, "retry@example.com")
    incident = declare(by=responder, level="P1", services=[ServiceFactory()])
    with django_capture_on_commit_callbacks():
        update = post_update(incident, by=responder)
    UpdateDelivery.objects.update(state=DeliveryState.FAILED, attempts=5, last_error="SMTP down")
    delivery = UpdateDelivery.objects.get()

    client.force_login(ManagerFactory(is_superuser=True))
    response = client.post(
        "/admin/statuspage/updatedelivery/", {"action": "retry_failed", "_selected_action": [delivery.pk]}
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 0)
    enqueued = []
    monkeypatch.setattr(tasks.send_update_emails, "delay", lambda update_id: enqueued.append(update_id))
    assert tasks.redeliver_tick() == 1 and enqueued == [update.pk]
    tasks.send_update_emails(update.pk)
    assert len(to("retry@example.com")) == 1

"""Notification rules as people use them: the "My notification rules" page (add a contact method, add and remove
a rule, bad input as form errors), "send me a test page" through the real channel, push through Apprise to a
JSON endpoint on loopback ("handed to provider", never "delivered"), default rules, and the warnings about
channels that only write a log line (check --deploy, the on-call page)."""

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from oncall import services as oncall_services
from oncall.models import ContactMethod, NotificationRule
from oncall.paging import channels, delivery
from oncall.paging.models import Notification, Receipt
from tests.factories import ManagerFactory, ResponderFactory, declare
from tests.oncall.factories import PersonFactory
from tests.paging.factories import paged_team, with_methods

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class _Push(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Push.received.append(json.loads(body or b"{}"))
        self.send_response(_Push.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def push_endpoint():
    """A JSON endpoint on loopback: Apprise's json:// plugin posts {title, message, type, ...} to it."""
    _Push.received, _Push.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Push)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/page", _Push
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


@pytest.fixture
def me(client):
    user = ResponderFactory()
    person = PersonFactory(name="Rita Responder", user=user, email="rita@example.com", phone="+14155552671")
    oncall_services.seed_default_notification_rules(person=person)
    client.force_login(user)
    return person


def test_default_rules_are_sms_and_email_at_once_and_a_call_after_3_minutes(me):
    rules = [(r.contact_method.channel, r.delay_minutes) for r in me.notification_rules.all()]
    assert rules == [("sms", 0), ("email", 0), ("voice", 3)]
    assert oncall_services.seed_default_notification_rules(person=me) == []  # twice adds nothing


def test_my_rules_page_lists_rules_and_adds_a_push_method_and_a_rule(client, me, push_endpoint):
    url, _ = push_endpoint
    html = client.get(reverse("paging:rules")).content.decode()
    assert "My notification rules" in html and "3 min after I am paged" in html and "Immediately" in html
    response = client.post(reverse("paging:add_contact_method"), {"channel": "push", "address": url})
    assert response.status_code == 200
    method = ContactMethod.objects.get(person=me, channel="push")
    response = client.post(
        reverse("paging:add_rule"), {"delay_minutes": "1", "contact_method": str(method.pk)}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "1 min after I am paged" in response.content.decode()
    assert NotificationRule.objects.filter(person=me, contact_method=method, delay_minutes=1).exists()
    rule = NotificationRule.objects.get(contact_method=method)
    client.post(reverse("paging:remove_rule", args=[rule.pk]))
    assert not NotificationRule.objects.filter(pk=rule.pk).exists()


@pytest.mark.parametrize(
    "channel,address,message",
    [
        ("sms", "0151 1234", "E.164"),
        ("push", "nosuchservice://abc", "Apprise cannot use this URL"),
        ("push", "just some words", "is not an Apprise URL"),
        ("email", "not-an-email", "valid email"),
    ],
)
def test_bad_contact_method_is_a_form_error_and_nothing_is_saved(client, me, channel, address, message):
    before = ContactMethod.objects.count()
    response = client.post(reverse("paging:add_contact_method"), {"channel": channel, "address": address})
    assert response.status_code == 400 and message in response.content.decode()
    assert ContactMethod.objects.count() == before


def test_bad_rule_is_a_form_error(client, me):
    other = with_methods(PersonFactory(), "email")
    foreign = other.contact_methods.get()
    own = me.contact_methods.get(channel="sms")
    for data in (
        {"delay_minutes": "-1", "contact_method": own.pk},
        {"delay_minutes": "500", "contact_method": own.pk},
        {"delay_minutes": "0", "contact_method": foreign.pk},
        {"delay_minutes": "0", "contact_method": own.pk},  # exists already
    ):
        assert client.post(reverse("paging:add_rule"), data).status_code == 400
    assert me.notification_rules.count() == 3


def test_someone_elses_rule_cannot_be_removed(client, me):
    other = with_methods(PersonFactory(), "email")
    rule = other.notification_rules.get()
    assert client.post(reverse("paging:remove_rule", args=[rule.pk])).status_code == 404
    assert NotificationRule.objects.filter(pk=rule.pk).exists()


def test_test_page_goes_through_the_real_channel(client, me, push_endpoint, mailoutbox):
    url, push = push_endpoint
    method = oncall_services.add_contact_method(person=me, channel="push", address=url, by=me.user)
    response = client.post(reverse("paging:test_page", args=[method.pk]))
    assert response.status_code == 200 and "handed to the provider" in response.content.decode()
    assert push.received and "Test page for Rita Responder" in push.received[0]["message"]
    email = me.contact_methods.get(channel="email")
    client.post(reverse("paging:test_page", args=[email.pk]))
    assert mailoutbox[-1].to == ["rita@example.com"]
    # SMS with no provider configured: the page says it reached nobody.
    sms = me.contact_methods.get(channel="sms")
    html = client.post(reverse("paging:test_page", args=[sms.pk])).content.decode()
    assert "only written to the log" in html and "reached nobody" in html


def test_test_page_that_the_service_refuses_says_so(client, me, push_endpoint):
    url, push = push_endpoint
    push.status = 500
    method = oncall_services.add_contact_method(person=me, channel="push", address=url, by=me.user)
    response = client.post(reverse("paging:test_page", args=[method.pk]), HTTP_HX_REQUEST="true")
    assert "The test page was not sent" in response.content.decode()


def test_push_page_through_apprise_is_handed_to_provider_never_delivered(clock, responder, push_endpoint):
    url, push = push_endpoint
    team = paged_team(oncall_channels=("push",))
    ContactMethod.objects.filter(person=team.oncall).update(address=url)
    incident = declare(by=responder, level="P1", services=[team.service])
    assert delivery.deliver_due_notifications() == {"sent": 1}
    row = Notification.objects.get()
    assert (row.receipt, row.state_label) == (Receipt.HANDED, "Handed to provider")
    [body] = push.received
    assert incident.reference in body["title"] and "/paging/ack/" in body["message"]


def test_push_service_down_is_retried(clock, responder, push_endpoint):
    url, push = push_endpoint
    push.status = 503
    team = paged_team(oncall_channels=("push",))
    ContactMethod.objects.filter(person=team.oncall).update(address=url)
    declare(by=responder, level="P1", services=[team.service])
    assert delivery.deliver_due_notifications() == {"retry": 1}
    assert "did not accept" in Notification.objects.get().last_error


def test_check_deploy_and_the_on_call_page_warn_about_channels_only_logged(client, me, settings, capsys):
    channels._backend.cache_clear()
    call_command("check", "--deploy", "--fail-level", "CRITICAL")
    out = capsys.readouterr()
    assert "paging.W001" in out.err + out.out and "SMS" in out.err + out.out
    html = client.get(reverse("oncall:now")).content.decode()
    assert "reach nobody" in html
    client.force_login(ManagerFactory())  # the paging admin says the same
    html = client.get(reverse("admin:paging_notification_changelist")).content.decode()
    assert "reach nobody" in html
    settings.PAGING_CHANNEL_BACKENDS = {
        **settings.PAGING_CHANNEL_BACKENDS,
        "sms": "oncall.paging.providers.TwilioSmsBackend",
        "voice": "oncall.paging.providers.TwilioVoiceBackend",
    }
    channels._backend.cache_clear()
    html = client.get(reverse("oncall:now")).content.decode()
    assert "reach nobody" not in html
    channels._backend.cache_clear()

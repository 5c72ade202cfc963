"""SMS and voice through the real `twilio` SDK, pointed at a Twilio stand-in on loopback (tests/paging/
twilio_server.py): what is sent, how Twilio's refusals are sorted, signed status callbacks (repeats and late ones
change nothing twice; a failure brings the person's next rule forward), SMS replies and keys pressed on a call
that acknowledge or escalate, and every unsigned or badly signed request refused with 403."""

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from incidents.models import EntryKind
from oncall.models import NotificationRule
from oncall.paging import channels, delivery, providers
from oncall.paging.models import Notification, Page, Receipt, SentMark
from tests.factories import declare
from tests.paging.factories import paged_team
from tests.paging.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, INVALID_NUMBER, TwilioServer
from tests.paging.twilio_server import twilio_signature as sign

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SITE = "http://testserver"


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


@pytest.fixture
def twilio(settings):
    with TwilioServer() as server:
        settings.SITE_URL = SITE
        settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
        settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
        settings.TWILIO_FROM_NUMBER = FROM_NUMBER
        settings.TWILIO_API_BASE_URL = server.base_url
        settings.PAGING_CHANNEL_BACKENDS = {
            **settings.PAGING_CHANNEL_BACKENDS,
            "sms": "oncall.paging.providers.TwilioSmsBackend",
            "voice": "oncall.paging.providers.TwilioVoiceBackend",
        }
        channels._backend.cache_clear()
        providers._client.cache_clear()
        yield server
    channels._backend.cache_clear()
    providers._client.cache_clear()


def callback(client, path: str, params: dict, *, token: str = AUTH_TOKEN, signature: str | None = None):
    """POST as Twilio does: form-encoded, signed over the full URL the portal handed out."""
    headers = {}
    if signature is None:
        signature = sign(token, SITE + path, params)
    if signature:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    return client.post(path, params, **headers)


STATUS = reverse("paging:twilio_status")
SMS_IN = reverse("paging:twilio_sms")


def paged(responder, *, sms_minutes=0, voice_minutes=3, level="P1"):
    """The on-call engineer is paged by SMS at once, email at once and a phone call after 3 minutes."""
    team = paged_team(oncall_channels=("sms", "email", "voice"))
    team.oncall.phone = "+14155552671"
    team.oncall.save()
    NotificationRule.objects.filter(person=team.oncall, contact_method__channel="voice").update(
        delay_minutes=voice_minutes
    )
    NotificationRule.objects.filter(person=team.oncall, contact_method__channel="sms").update(delay_minutes=sms_minutes)
    incident = declare(by=responder, level=level, services=[team.service])
    return team, incident


def test_sms_page_goes_through_twilio_with_severity_reference_and_ack_code(clock, responder, twilio, mailoutbox):
    team, incident = paged(responder)
    assert delivery.deliver_due_notifications() == {"sent": 2}  # SMS and email now; the call waits 3 minutes
    [message] = twilio.messages
    form = message["form"]
    assert (form["To"], form["From"]) == ("+14155552671", FROM_NUMBER)
    sms = Notification.objects.get(channel="sms")
    assert incident.reference in form["Body"] and "[P1]" in form["Body"]
    # Links point at SITE_URL (make run sets it from PORT), in the SMS and in the email.
    assert f"Acknowledge: {SITE}/paging/ack/" in form["Body"]
    assert f"{SITE}{incident.get_absolute_url()}" in mailoutbox[0].body
    assert f"Reply ACK {sms.ack_code}" in form["Body"] and re.fullmatch(r"\d{4}", sms.ack_code)
    assert form["StatusCallback"] == SITE + STATUS
    assert (sms.receipt, sms.provider_id) == (Receipt.QUEUED, message["sid"])
    assert sms.state_label == "Queued at provider" and not sms.is_unreached


def test_status_callbacks_move_forward_only_and_repeats_change_nothing(clock, responder, twilio, client):
    paged(responder)
    delivery.deliver_due_notifications()
    sms = Notification.objects.get(channel="sms")
    sid = sms.provider_id
    assert callback(client, STATUS, {"MessageSid": sid, "MessageStatus": "sent"}).status_code == 204
    assert callback(client, STATUS, {"MessageSid": sid, "MessageStatus": "delivered"}).status_code == 204
    sms.refresh_from_db()
    delivered_at = sms.receipt_at
    assert (sms.receipt, sms.provider_status) == (Receipt.DELIVERED, "delivered")
    clock.move_to(MONDAY_10 + timedelta(seconds=30))
    # Twilio repeats a callback, and a late "sent" arrives after "delivered": neither changes anything.
    assert callback(client, STATUS, {"MessageSid": sid, "MessageStatus": "delivered"}).status_code == 204
    assert callback(client, STATUS, {"MessageSid": sid, "MessageStatus": "sent"}).status_code == 204
    sms.refresh_from_db()
    assert (sms.receipt, sms.receipt_at) == (Receipt.DELIVERED, delivered_at)


def test_undelivered_sms_brings_the_call_forward_once(clock, responder, twilio, client):
    _, incident = paged(responder)
    delivery.deliver_due_notifications()
    call = Notification.objects.get(channel="voice")
    assert call.scheduled_for == MONDAY_10 + timedelta(minutes=3)
    sid = Notification.objects.get(channel="sms").provider_id
    clock.move_to(MONDAY_10 + timedelta(seconds=40))
    params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert callback(client, STATUS, params).status_code == 204
    assert callback(client, STATUS, params).status_code == 204  # repeated
    assert callback(client, STATUS, {**params, "MessageStatus": "failed"}).status_code == 204  # late, same rank
    call.refresh_from_db()
    assert call.scheduled_for == MONDAY_10 + timedelta(seconds=40)
    notes = incident.timeline.filter(body__contains="Trying their next notification rule now: Phone call")
    assert notes.count() == 1 and "undelivered (error 30003)" in notes.get().body
    sms = Notification.objects.get(channel="sms")
    assert sms.receipt == Receipt.FAILED and sms.is_unreached
    # The call goes out now, reading the page and gathering one key.
    assert delivery.deliver_due_notifications() == {"sent": 1}
    [placed] = twilio.calls
    twiml = placed["form"]["Twiml"]
    assert "<Gather" in twiml and "Press 1 to acknowledge" in twiml and "Press 2 to escalate" in twiml
    assert reverse("paging:twilio_gather", kwargs={"pk": call.pk}) in twiml
    assert incident.reference in twiml


def test_unanswered_call_is_no_answer_and_busy_too(clock, responder, twilio, client):
    paged(responder, voice_minutes=0)
    delivery.deliver_due_notifications()
    call = Notification.objects.get(channel="voice")
    assert callback(client, STATUS, {"CallSid": call.provider_id, "CallStatus": "ringing"}).status_code == 204
    assert callback(client, STATUS, {"CallSid": call.provider_id, "CallStatus": "no-answer"}).status_code == 204
    assert callback(client, STATUS, {"CallSid": call.provider_id, "CallStatus": "busy"}).status_code == 204
    call.refresh_from_db()
    assert (call.receipt, call.provider_status, call.state_label) == (Receipt.NO_ANSWER, "no-answer", "No answer")


def test_unsigned_or_badly_signed_callbacks_are_refused_and_logged(clock, responder, twilio, client, caplog):
    paged(responder)
    delivery.deliver_due_notifications()
    sms = Notification.objects.get(channel="sms")
    params = {"MessageSid": sms.provider_id, "MessageStatus": "delivered"}
    with caplog.at_level(logging.WARNING, logger="oncall.paging.views"):
        assert callback(client, STATUS, params, signature="").status_code == 403
        assert callback(client, STATUS, params, token="not-the-token").status_code == 403
        forged = sign(AUTH_TOKEN, SITE + STATUS, {**params, "MessageStatus": "failed"})
        assert callback(client, STATUS, params, signature=forged).status_code == 403
        assert callback(client, SMS_IN, {"From": "+14155552671", "Body": "1"}, signature="").status_code == 403
    assert sum("Twilio request refused" in r.getMessage() for r in caplog.records) == 4
    sms.refresh_from_db()
    assert sms.receipt == Receipt.QUEUED
    assert Page.objects.get().state == Page.State.ACTIVE


def test_callback_for_an_unknown_sid_is_404_and_changes_nothing(clock, responder, twilio, client):
    paged(responder)
    delivery.deliver_due_notifications()
    response = callback(client, STATUS, {"MessageSid": "SM" + "f" * 32, "MessageStatus": "failed"})
    assert response.status_code == 404 and response.json()["field"] == "MessageSid"
    response = callback(client, STATUS, {"MessageSid": "", "MessageStatus": "failed"})
    assert response.status_code == 400
    sid = Notification.objects.get(channel="sms").provider_id
    response = callback(client, STATUS, {"MessageSid": sid, "MessageStatus": "exploded"})
    assert response.status_code == 400 and "exploded" in response.json()["error"]
    assert set(Notification.objects.exclude(channel="email").values_list("receipt", flat=True)) <= {"queued", ""}


def test_a_callback_for_a_message_whose_batch_never_committed_finds_it_by_its_sent_mark(
    clock, responder, twilio, client
):
    """Twilio answers a send while the sender's batch is still open (the row shows no SID until it commits) or
    after its worker died: the sent mark knows the SID, and the callback records the row as sent and delivered."""
    paged(responder)
    sms = Notification.objects.get(channel="sms")
    sid = "SM" + "b" * 32
    SentMark.objects.create(notification_id=sms.pk, sent_at=MONDAY_10, receipt=Receipt.QUEUED, provider_id=sid)
    assert callback(client, STATUS, {"MessageSid": sid, "MessageStatus": "delivered"}).status_code == 204
    sms.refresh_from_db()
    assert (sms.status, sms.provider_id, sms.receipt) == (Notification.Status.SENT, sid, Receipt.DELIVERED)
    assert not SentMark.objects.filter(notification_id=sms.pk).exists()
    delivery.deliver_due_notifications()
    assert twilio.messages == []  # the SMS is not sent again


def test_sms_reply_with_the_code_acknowledges_once(clock, responder, twilio, client):
    _, incident = paged(responder)
    delivery.deliver_due_notifications()
    sms = Notification.objects.get(channel="sms")
    response = callback(client, SMS_IN, {"From": "+14155552671", "Body": f"ack {sms.ack_code}"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    assert f"{incident.reference} acknowledged" in response.content.decode()
    page = Page.objects.get()
    assert (page.state, page.acknowledged_via) == (Page.State.ACKNOWLEDGED, "SMS reply")
    # The call still waiting is cancelled; a second reply acknowledges nothing more.
    assert Notification.objects.get(channel="voice").status == Notification.Status.CANCELLED
    again = callback(client, SMS_IN, {"From": "+14155552671", "Body": "1"})
    assert "No open page" in again.content.decode()
    # One acknowledgement, one timeline entry and one line in the paging panel.
    assert incident.timeline.filter(body__icontains="acknowledged").exclude(kind="checklist").count() == 1
    client.force_login(responder)
    html = client.get(incident.get_absolute_url()).content.decode()
    panel = html[html.index('id="paging-panel"') :]
    panel = panel[: panel.index("</section>")]
    assert panel.count("cknowledged") == 1 and "via SMS reply" in panel


def test_sms_reply_1_acknowledges_the_latest_open_page(clock, responder, twilio, client):
    paged(responder)
    delivery.deliver_due_notifications()
    response = callback(client, SMS_IN, {"From": "+14155552671", "Body": "1"})
    assert "acknowledged" in response.content.decode()
    assert Page.objects.get().state == Page.State.ACKNOWLEDGED


def test_sms_reply_with_a_wrong_unknown_or_expired_code_changes_nothing(clock, responder, twilio, client, settings):
    paged(responder)
    delivery.deliver_due_notifications()
    sms = Notification.objects.get(channel="sms")
    wrong = "1000" if sms.ack_code != "1000" else "1001"
    reply = callback(client, SMS_IN, {"From": "+14155552671", "Body": f"ACK {wrong}"}).content.decode()
    assert f"Code {wrong} matches no page" in reply
    reply = callback(client, SMS_IN, {"From": "+14155550000", "Body": f"ACK {sms.ack_code}"}).content.decode()
    assert "matches no page sent to this number" in reply
    reply = callback(client, SMS_IN, {"From": "+14155552671", "Body": "what is this"}).content.decode()
    assert "Not understood" in reply
    clock.move_to(MONDAY_10 + timedelta(seconds=settings.PAGING_ACK_LINK_MAX_AGE + 60))
    reply = callback(client, SMS_IN, {"From": "+14155552671", "Body": f"ACK {sms.ack_code}"}).content.decode()
    assert "has expired" in reply
    assert Page.objects.get().acknowledged_at is None


def test_pressing_1_on_the_call_acknowledges(clock, responder, twilio, client):
    paged(responder, voice_minutes=0)
    delivery.deliver_due_notifications()
    call = Notification.objects.get(channel="voice")
    path = reverse("paging:twilio_gather", kwargs={"pk": call.pk})
    response = callback(client, path, {"CallSid": call.provider_id, "Digits": "1"})
    assert response.status_code == 200 and "is acknowledged" in response.content.decode()
    assert Page.objects.get().acknowledged_via == "phone call"


def test_pressing_2_on_the_call_escalates_to_the_next_level_now(clock, responder, twilio, client):
    team, incident = paged(responder, voice_minutes=0)
    delivery.deliver_due_notifications()
    call = Notification.objects.get(channel="voice")
    clock.move_to(MONDAY_10 + timedelta(minutes=1))
    path = reverse("paging:twilio_gather", kwargs={"pk": call.pk})
    response = callback(client, path, {"CallSid": call.provider_id, "Digits": "2"})
    assert "escalated to the next level" in response.content.decode()
    page = Page.objects.get()
    assert page.escalation_level == 1 and page.state == Page.State.ACTIVE
    assert Notification.objects.filter(page=page, level=1, person=team.lead).exists()
    assert incident.timeline.filter(body__contains="asked to escalate now (phone call)").count() == 1
    # Another key asks again; an unsigned press is refused.
    again = callback(client, path, {"CallSid": call.provider_id, "Digits": "9"}).content.decode()
    assert "<Gather" in again
    assert callback(client, path, {"Digits": "1"}, signature="bad").status_code == 403
    assert Page.objects.get().state == Page.State.ACTIVE


def test_invalid_number_is_a_permanent_failure_and_the_next_rule_fires(clock, responder, twilio):
    team, incident = paged(responder, sms_minutes=0, voice_minutes=5)
    Notification.objects.filter(channel="sms").update(address=INVALID_NUMBER)
    assert delivery.deliver_due_notifications() == {"failed": 1, "sent": 2}  # SMS failed, email and the call sent
    sms = Notification.objects.get(channel="sms")
    assert sms.status == Notification.Status.FAILED and "21211" in sms.last_error
    assert len(twilio.calls) == 1
    note = incident.timeline.filter(body__startswith="Could not notify").get()
    assert "is not a valid phone number" in note.body and "Phone call" in note.body


def test_rate_limited_and_server_errors_are_retried_with_backoff(clock, responder, twilio, settings):
    settings.PAGING_RETRY_BACKOFF_SECONDS = 10
    team = paged_team(oncall_channels=("sms",))
    team.oncall.phone = "+14155552671"
    team.oncall.save()
    twilio.fail_next = [(429, 20429, "Too Many Requests"), (503, 20503, "Service Unavailable")]
    declare(by=responder, level="P1", services=[team.service])
    assert delivery.deliver_due_notifications() == {"retry": 1}
    sms = Notification.objects.get()
    assert "429" in sms.last_error and sms.scheduled_for == MONDAY_10 + timedelta(seconds=10)
    clock.move_to(MONDAY_10 + timedelta(seconds=10))
    assert delivery.deliver_due_notifications() == {"retry": 1}
    clock.move_to(MONDAY_10 + timedelta(seconds=30))
    assert delivery.deliver_due_notifications() == {"sent": 1}
    assert len(twilio.messages) == 1
    assert Notification.objects.get().receipt == Receipt.QUEUED


def test_logging_backend_sends_are_logged_not_delivered_and_shown_in_red(clock, responder, client, settings):
    settings.PAGING_CHANNEL_BACKENDS = {
        **settings.PAGING_CHANNEL_BACKENDS,
        "sms": "oncall.paging.channels.LoggingBackend",
    }
    channels._backend.cache_clear()
    team = paged_team(oncall_channels=("sms",))
    incident = declare(by=responder, level="P1", services=[team.service])
    delivery.deliver_due_notifications()
    sms = Notification.objects.get()
    assert (sms.receipt, sms.state_label, sms.is_unreached) == (Receipt.LOGGED, "Logged, not delivered", True)
    client.force_login(responder)
    html = client.get(incident.get_absolute_url()).content.decode()
    assert "notification-unreached" in html and "logged, not delivered" in html
    assert incident.timeline.filter(kind=EntryKind.SYSTEM).exists()

"""The sender and the channels: email HTML + text with the acknowledge link, rate limit and batching, retries with
backoff, permanent failures on the timeline with fallback to the next contact method, the acknowledgement fence,
Slack-compatible and HMAC-signed webhooks against a local HTTP server."""

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from unittest import mock

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.services.status import acknowledge_incident, change_status
from oncall.models import NotificationRule
from oncall.paging import channels, delivery, sentmarks
from oncall.paging.channels import OutgoingMessage, PermanentFailure, TemporaryFailure
from oncall.paging.models import Notification, Page, Receipt, SentMark, WebhookEndpoint
from tests.factories import declare
from tests.paging.factories import paged_team

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class ScriptedBackend(channels.Backend):
    """Fails as told, then records what it sends."""

    script: list = []
    sent: list = []

    def send(self, message):
        if ScriptedBackend.script:
            outcome = ScriptedBackend.script.pop(0)
            if outcome is not None:
                raise outcome
        ScriptedBackend.sent.append(message)


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


@pytest.fixture
def scripted(settings):
    channels._backend.cache_clear()
    ScriptedBackend.script, ScriptedBackend.sent = [], []
    path = f"{__name__}.ScriptedBackend"
    settings.PAGING_CHANNEL_BACKENDS = {**settings.PAGING_CHANNEL_BACKENDS, "email": path, "sms": path}
    yield ScriptedBackend
    channels._backend.cache_clear()


def test_page_email_has_html_and_text_with_a_working_acknowledge_link(clock, responder, mailoutbox):
    team = paged_team(oncall_channels=("email",))
    incident = declare(by=responder, level="P1", services=[team.service])
    assert delivery.deliver_due_notifications() == {"sent": 1}
    (email,) = mailoutbox
    assert email.to == [team.oncall.email]
    assert email.subject == f"[P1] {incident.reference} API slow response times (level 1): please acknowledge"
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html" and "Acknowledge</a>" in html
    link = next(word for word in email.body.split() if "/paging/ack/" in word)
    assert link in html
    row = Notification.objects.get(channel="email")
    assert row.status == Notification.Status.SENT and row.sent_at == MONDAY_10 and row.attempts == 1
    assert email.extra_headers["X-Idempotency-Key"] == row.idempotency_key


def test_restricted_incident_page_names_the_reference_only(clock, responder, mailoutbox):
    team = paged_team(oncall_channels=("email",))
    declare(by=responder, level="P1", services=[team.service], is_restricted=True, title="Customer data leak")
    delivery.deliver_due_notifications()
    assert "Customer data leak" not in mailoutbox[0].body + mailoutbox[0].subject
    assert "Restricted incident" in mailoutbox[0].subject


def test_a_second_delivery_of_the_same_work_sends_nothing(clock, responder, mailoutbox):
    team = paged_team(oncall_channels=("email",))
    declare(by=responder, level="P1", services=[team.service])
    delivery.deliver_due_notifications()
    assert delivery.deliver_due_notifications() == {}
    assert len(mailoutbox) == 1


def test_no_notification_goes_out_after_the_acknowledgement(clock, responder, mailoutbox):
    team = paged_team(oncall_channels=("email",))
    incident = declare(by=responder, level="P1", services=[team.service])
    row = Notification.objects.get(channel="email")
    acknowledge_incident(incident=incident, by=responder)
    # A row the acknowledgement could not cancel (a sender held it) is cancelled by the sender's own fence.
    Notification.objects.filter(pk=row.pk).update(status=Notification.Status.PENDING, scheduled_for=MONDAY_10)
    assert delivery.deliver_due_notifications() == {"cancelled": 1}
    assert mailoutbox == []


def test_rate_limit_batches_a_contacts_messages_within_a_minute(clock, responder, scripted):
    team = paged_team(oncall_channels=("email",))
    first = declare(by=responder, level="P1", services=[team.service], title="First")
    delivery.deliver_due_notifications()
    assert len(scripted.sent) == 1
    clock.move_to(MONDAY_10 + timedelta(seconds=10))
    declare(by=responder, level="P1", services=[team.service], title="Second")
    clock.move_to(MONDAY_10 + timedelta(seconds=20))
    declare(by=responder, level="P1", services=[team.service], title="Third")
    assert delivery.deliver_due_notifications() == {"deferred": 2}
    waiting = Notification.objects.filter(status=Notification.Status.PENDING)
    assert set(waiting.values_list("scheduled_for", flat=True)) == {MONDAY_10 + timedelta(seconds=60)}
    clock.move_to(MONDAY_10 + timedelta(seconds=59))
    assert delivery.deliver_due_notifications() == {}
    clock.move_to(MONDAY_10 + timedelta(seconds=60))
    assert delivery.deliver_due_notifications() == {"sent": 1}
    assert len(scripted.sent) == 2
    batched = scripted.sent[1]
    assert batched.subject.startswith("2 notifications") and "Second" in batched.text and "Third" in batched.text
    leader = Notification.objects.get(idempotency_key=batched.idempotency_key)
    follower = Notification.objects.exclude(pk=leader.pk).exclude(incident=first).get()
    assert follower.status == Notification.Status.SENT and follower.batched_into == leader


def test_temporary_failures_retry_with_backoff_then_bring_the_next_rule_forward(clock, responder, scripted, settings):
    settings.PAGING_MAX_ATTEMPTS = 3
    settings.PAGING_RETRY_BACKOFF_SECONDS = 10
    team = paged_team(oncall_channels=("email", "sms"))
    # Email at once, SMS 10 minutes after the page: the SMS waits for its time unless the email fails for good.
    NotificationRule.objects.filter(person=team.oncall, contact_method__channel="sms").update(delay_minutes=10)
    incident = declare(by=responder, level="P1", services=[team.service])
    scripted.script = [TemporaryFailure("421 try later")] * 3
    email = Notification.objects.get(channel="email")
    sms = Notification.objects.get(channel="sms")
    assert sms.scheduled_for == MONDAY_10 + timedelta(minutes=10)
    assert delivery.deliver_due_notifications() == {"retry": 1}
    email.refresh_from_db()
    assert (email.attempts, email.scheduled_for) == (1, MONDAY_10 + timedelta(seconds=10))
    clock.move_to(MONDAY_10 + timedelta(seconds=10))
    delivery.deliver_due_notifications()
    email.refresh_from_db()
    assert (email.attempts, email.scheduled_for) == (2, MONDAY_10 + timedelta(seconds=30))
    clock.move_to(MONDAY_10 + timedelta(seconds=30))
    counts = delivery.deliver_due_notifications()
    email.refresh_from_db()
    assert email.status == Notification.Status.FAILED and "gave up after 3 attempts" in email.last_error
    # The SMS rule was brought forward and went out in the same run, 9.5 minutes early.
    assert counts == {"retry": 1, "sent": 1}
    assert [m.channel for m in scripted.sent] == ["sms"]
    note = incident.timeline.filter(body__startswith="Could not notify").get()
    assert "Trying their next notification rule now: SMS" in note.body and note.kind == "system"


def test_every_rule_fires_sms_and_email_both_at_once(clock, responder, scripted):
    """The defect of issue 13: SMS at position 0 and email at position 1, both with no delay, both go out."""
    team = paged_team(oncall_channels=("sms", "email"))
    declare(by=responder, level="P1", services=[team.service])
    assert delivery.deliver_due_notifications() == {"sent": 2}
    assert sorted(m.channel for m in scripted.sent) == ["email", "sms"]
    assert set(Notification.objects.values_list("status", flat=True)) == {Notification.Status.SENT}


def test_permanent_failure_is_recorded_and_shown_when_nothing_is_left(clock, responder, scripted):
    team = paged_team(oncall_channels=("email",))
    incident = declare(by=responder, level="P1", services=[team.service])
    scripted.script = [PermanentFailure("550 no such user")]
    assert delivery.deliver_due_notifications() == {"failed": 1}
    row = Notification.objects.get()
    assert row.status == Notification.Status.FAILED and row.last_error == "550 no such user"
    note = incident.timeline.filter(body__startswith="Could not notify").get()
    assert "No other notification rule is left to try" in note.body


def test_a_backend_bug_is_retried_not_fatal(clock, responder, scripted):
    team = paged_team(oncall_channels=("email",))
    declare(by=responder, level="P1", services=[team.service])
    scripted.script = [ZeroDivisionError("bug")]
    assert delivery.deliver_due_notifications() == {"retry": 1}
    assert Notification.objects.get().last_error == "bug"


def test_notification_rule_delay_schedules_a_follow_up(clock, responder):
    from tests.oncall.factories import PersonFactory, RotationFactory, TeamFactory, add_members
    from tests.paging.factories import with_methods

    team = TeamFactory()
    person = with_methods(PersonFactory(), "email", "voice", delays={"voice": 2})
    rotation = RotationFactory(team=team)
    add_members(rotation, "primary", [person])
    from tests.factories import ServiceFactory

    service = ServiceFactory(owning_team=team)
    declare(by=responder, level="P1", services=[service])
    voice = Notification.objects.get(channel="voice")
    assert voice.status == Notification.Status.PENDING and voice.scheduled_for == MONDAY_10 + timedelta(minutes=2)


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(_Receiver.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received, _Receiver.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver
    finally:
        server.shutdown()
        server.server_close()


def test_generic_webhook_is_signed_with_hmac_sha256(clock, responder, receiver):
    url, handler = receiver
    endpoint = WebhookEndpoint.objects.create(name="Ops bus", url=url, format=WebhookEndpoint.Format.GENERIC)
    assert len(endpoint.secret) == 64
    team = paged_team(oncall_channels=("sms",))
    incident = declare(by=responder, level="P1", services=[team.service])
    assert delivery.deliver_due_notifications() == {"sent": 2}
    ((headers, body),) = handler.received
    expected = hmac.new(
        endpoint.secret.encode(), headers["X-Portal-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(headers["X-Portal-Signature"], f"sha256={expected}")
    document = json.loads(body)
    assert document["incident"] == incident.reference and document["level"] == 1 and "secret" not in document
    assert headers["Idempotency-Key"] == document["idempotency_key"]


def test_slack_webhook_gets_text_and_an_acknowledge_button(clock, responder, receiver):
    url, handler = receiver
    WebhookEndpoint.objects.create(name="#incidents", url=url, format=WebhookEndpoint.Format.SLACK)
    team = paged_team(oncall_channels=("sms",))
    declare(by=responder, level="P0", services=[team.service])
    delivery.deliver_due_notifications()
    ((_headers, body),) = handler.received
    payload = json.loads(body)
    assert payload["text"].startswith("*[P0] INC-")
    assert payload["blocks"][0]["type"] == "section"


def test_webhook_server_errors_are_temporary_and_client_errors_permanent(receiver):
    url, handler = receiver
    message = OutgoingMessage(channel="webhook", address=url, recipient="x", subject="s", text="t", data={})
    handler.status = 503
    with pytest.raises(TemporaryFailure):
        channels.WebhookBackend().send(message)
    handler.status = 404
    with pytest.raises(PermanentFailure):
        channels.WebhookBackend().send(message)
    with pytest.raises(PermanentFailure):
        channels.WebhookBackend().send(OutgoingMessage("webhook", "file:///etc/passwd", "x", "s", "t", data={}))


def test_chat_without_a_webhook_fails_permanently_and_falls_back(clock, responder, settings, mailoutbox):
    settings.PAGING_CHAT_WEBHOOK_URL = ""
    team = paged_team(oncall_channels=("chat", "email"))
    declare(by=responder, level="P1", services=[team.service])
    counts = delivery.deliver_due_notifications()
    assert counts == {"failed": 1, "sent": 1}
    assert len(mailoutbox) == 1


def test_logging_backend_is_the_default_for_sms(clock, responder, caplog):
    team = paged_team(oncall_channels=("sms",))
    declare(by=responder, level="P1", services=[team.service])
    with caplog.at_level("WARNING", logger="oncall.paging.channels"):
        assert delivery.deliver_due_notifications() == {"sent": 1}
    assert "PAGE sms to Platform Engineer (Primary on-call of Platform) <+14155552671>" in caplog.text


def test_page_state_closed_before_claim_cancels_hotline_alerts_too(clock, responder):
    team = paged_team(oncall_channels=("sms",))
    incident = declare(by=responder, level="P1", services=[team.service])
    page = Page.objects.get(incident=incident)
    Notification.objects.create(
        idempotency_key="x",
        incident=incident,
        page=page,
        purpose=Notification.Purpose.HOTLINE,
        recipient="CTO",
        channel="voice",
        address="+15550011",
        scheduled_for=MONDAY_10,
    )
    change_status(incident=incident, to="resolved", by=responder)
    assert delivery.deliver_due_notifications() == {}
    assert set(Notification.objects.values_list("status", flat=True)) == {Notification.Status.CANCELLED}


# --- batches and sent marks (oncall.paging.sentmarks) ------------------------------------------------------------


def _pending_pages(responder, count: int) -> list:
    """`count` P1 incidents of distinct teams whose on-call has an email and an SMS rule: 2 rows each, due now."""
    incidents = []
    for i in range(count):
        team = paged_team(name=f"Batch {i}", oncall_channels=("email", "sms"))
        team.oncall.phone = f"+1415555{i:04d}"
        team.oncall.save(update_fields=["phone"])
        incidents.append(declare(by=responder, level="P1", services=[team.service], title=f"Batch {i}"))
    return incidents


def test_one_batch_sends_many_rows_in_a_fixed_number_of_statements(clock, responder, scripted, settings):
    _pending_pages(responder, 5)
    settings.PAGING_SENDER_BATCH = 20
    written = []
    original = sentmarks.write
    spy = mock.patch.object(sentmarks, "write", side_effect=lambda rows: written.append(rows) or original(rows))
    with CaptureQueriesContext(connection) as queries, spy:
        assert delivery.deliver_batch(skip=set()) == {"sent": 10}
    # BEGIN, the claim, the UPDATE marking every row sent (and dropping their marks), COMMIT: whatever the size.
    assert len(queries) == 4
    # One sent mark per message, each committed on the sender's own connection before the next send.
    assert [len(rows) for rows in written] == [1] * 10 and len(scripted.sent) == 10
    assert set(Notification.objects.values_list("status", flat=True)) == {Notification.Status.SENT}
    assert not SentMark.objects.exists()


def test_a_batch_stops_sending_after_its_time_and_leaves_the_rest_pending(clock, responder, scripted, settings):
    _pending_pages(responder, 2)
    settings.PAGING_SENDER_BATCH, settings.PAGING_SENDER_BATCH_SECONDS = 20, 0
    # No time left after the first send: an acknowledgement never waits for more than one send here.
    assert delivery.deliver_batch(skip=set()) == {"sent": 1}
    assert Notification.objects.filter(status=Notification.Status.PENDING).count() == 3
    assert delivery.deliver_due_notifications() == {"sent": 3}
    assert len({m.idempotency_key for m in scripted.sent}) == 4 == len(scripted.sent)


def _sent_by_a_dead_worker(row: Notification) -> None:
    """What a sender killed mid-batch leaves: its rows pending again (the batch rolled back), with the committed
    sent mark of each message it had sent."""
    SentMark.objects.create(
        notification_id=row.pk, sent_at=MONDAY_10, receipt=Receipt.QUEUED, provider_id="SM" + "a" * 32
    )


def test_a_row_sent_before_its_worker_died_is_recorded_as_sent_not_sent_again(clock, responder, scripted):
    team = paged_team(oncall_channels=("sms", "email"))
    team.oncall.phone = "+14155550100"
    team.oncall.save(update_fields=["phone"])
    declare(by=responder, level="P1", services=[team.service])
    sms = Notification.objects.get(channel="sms")
    _sent_by_a_dead_worker(sms)
    clock.move_to(MONDAY_10 + timedelta(seconds=5))
    assert delivery.deliver_due_notifications() == {"recovered": 1, "sent": 1}
    assert [m.channel for m in scripted.sent] == ["email"]  # the SMS is not sent a second time
    sms.refresh_from_db()
    assert (sms.status, sms.sent_at, sms.receipt, sms.provider_id) == ("sent", MONDAY_10, "queued", "SM" + "a" * 32)
    assert sms.state_label == "Queued at provider"
    assert not SentMark.objects.exists()


def test_acknowledging_records_a_row_sent_by_a_dead_worker_as_sent_not_cancelled(clock, responder, scripted):
    team = paged_team(oncall_channels=("sms", "email"))
    incident = declare(by=responder, level="P1", services=[team.service])
    sms, email = Notification.objects.get(channel="sms"), Notification.objects.get(channel="email")
    _sent_by_a_dead_worker(sms)
    acknowledge_incident(incident=incident, by=responder)
    sms.refresh_from_db()
    email.refresh_from_db()
    assert (sms.status, email.status) == (Notification.Status.SENT, Notification.Status.CANCELLED)
    assert delivery.deliver_due_notifications() == {} and scripted.sent == []


def test_a_rate_limited_message_does_not_take_along_a_row_a_dead_worker_had_sent(clock, responder, scripted, settings):
    team = paged_team(oncall_channels=("email",))
    declare(by=responder, level="P1", services=[team.service], title="First")
    delivery.deliver_due_notifications()
    clock.move_to(MONDAY_10 + timedelta(seconds=10))
    declare(by=responder, level="P1", services=[team.service], title="Second")
    clock.move_to(MONDAY_10 + timedelta(seconds=20))
    third = declare(by=responder, level="P1", services=[team.service], title="Third")
    assert delivery.deliver_due_notifications() == {"deferred": 2}
    _sent_by_a_dead_worker(Notification.objects.get(incident=third))
    clock.move_to(MONDAY_10 + timedelta(seconds=60))
    settings.PAGING_SENDER_BATCH = 1  # the claim takes the second; the third would join it as a companion
    assert delivery.deliver_due_notifications() == {"sent": 1}
    assert len(scripted.sent) == 2 and "Third" not in scripted.sent[1].text and "Second" in scripted.sent[1].text
    assert Notification.objects.get(incident=third).status == Notification.Status.SENT

"""The incident channel kept by the outbox: created on declaration (private for restricted incidents), topic,
invites, the declaration announced, the checklist item ticked by the portal, timeline entries mirrored, pages with an
Acknowledge button, archive on close; retries, 429 + Retry-After and a Slack outage that never blocks the portal."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from incidents.models import ChecklistItem, Role, Status
from incidents.services.roles import assign_role
from incidents.services.status import acknowledge_incident, change_severity, change_status
from incidents.services.updates import post_status_update
from oncall.chatops import outbox
from oncall.chatops.models import ChatOutbox, IncidentChannel
from tests.chatops.conftest import link, run_worker
from tests.factories import ResponderFactory, SecurityFactory, declare, severity

pytestmark = pytest.mark.django_db


def test_declaring_creates_the_channel_with_topic_declaration_invite_and_announcement(slack):
    commander = ResponderFactory(first_name="Ada", last_name="Lovelace")
    link(commander, "UADA", slack)
    incident = declare(by=commander, level="P1", title="Checkout is failing for EU users!")
    run_worker()

    channel = slack.channel_named(f"inc-{incident.number}-checkout-is-failing-for-eu-users")
    assert channel is not None and not channel.is_private
    assert "P1 High · Investigating · IC: Ada Lovelace · http" in channel.topic
    assert f"/incidents/{incident.reference}/" in channel.topic
    assert "UADA" in channel.members
    first = channel.messages[0]
    assert f"{incident.reference} declared (P1 High)" in first["text"]
    announced = slack.channels["CANNOUNCE"].messages
    assert len(announced) == 1 and f"<#{channel.id}>" in str(announced[0]["blocks"])

    stored = IncidentChannel.objects.get(incident=incident)
    assert stored.channel_id == channel.id and stored.url == f"https://acme.slack.com/archives/{channel.id}"
    item = ChecklistItem.objects.get(incident=incident, text="Incident channel created")
    assert item.is_checked and item.checked_by is None
    assert incident.timeline.filter(body__contains="Checked (Detection): Incident channel created").exists()


def test_the_incident_page_shows_the_channel_name_and_link(slack, client):
    commander = ResponderFactory()
    incident = declare(by=commander)
    run_worker()
    client.force_login(commander)
    page = client.get(incident.get_absolute_url()).content.decode()
    channel = IncidentChannel.objects.get(incident=incident)
    assert f'href="https://acme.slack.com/archives/{channel.channel_id}"' in page
    assert f"#{channel.name}" in page


def test_restricted_incident_gets_a_private_channel_and_no_announcement(slack):
    security = SecurityFactory()
    incident = declare(by=security, level="P0", title="Credential leak", is_restricted=True)
    run_worker()
    channel = slack.channel_named(f"inc-{incident.number}-credential-leak")
    assert channel.is_private
    assert slack.channels["CANNOUNCE"].messages == []
    # Nothing was posted anywhere but the private channel.
    posted_to = {params["channel"] for params in slack.calls_of("chat.postMessage")}
    assert posted_to == {channel.id}


def test_p2_is_not_announced_where_no_channel_is_set_for_it(slack):
    declare(level="P2")
    run_worker()
    assert slack.channels["CANNOUNCE"].messages == []
    assert ChatOutbox.objects.filter(action=ChatOutbox.Action.ANNOUNCE).count() == 0


def test_status_role_and_update_are_posted_and_the_topic_follows(slack):
    commander, lead = ResponderFactory(first_name="Ada"), ResponderFactory(first_name="Grace", last_name="Hopper")
    link(commander, "UADA", slack)
    link(lead, "UGRACE", slack)
    incident = declare(by=commander, level="P1")
    run_worker()
    assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=lead, by=commander)
    change_status(incident=incident, to=Status.IDENTIFIED, by=commander, note="Bad deploy")
    post_status_update(
        incident=incident, kind="internal", status="fixing", by=commander, what_we_know="Deploy 42 broke checkout"
    )
    run_worker()
    channel = slack.channels[IncidentChannel.objects.get(incident=incident).channel_id]
    texts = [m["text"] for m in channel.messages]
    assert any("<@UGRACE>" not in t and "Grace Hopper is now *Technical Lead*" in t for t in texts)
    assert any("Status changed from Investigating to *Identified*" in t for t in texts)
    assert any("Internal update posted: *Fixing*" in t for t in texts)
    assert "UGRACE" in channel.members
    assert "· Identified ·" in channel.topic
    # Posts name who did it: a linked person by mention.
    assert "<@UADA>" in str(channel.messages[-1]["blocks"])


def test_closing_archives_the_channel(slack, manager):
    incident = declare(by=manager)
    run_worker()
    change_status(incident=incident, to=Status.RESOLVED, by=manager)
    change_status(incident=incident, to=Status.CLOSED, by=manager, override_reason="drill")
    run_worker()
    stored = IncidentChannel.objects.get(incident=incident)
    assert slack.channels[stored.channel_id].is_archived and stored.archived_at is not None


def test_archive_on_close_can_be_turned_off(slack, manager, settings):
    settings.SLACK_ARCHIVE_ON_CLOSE = False
    incident = declare(by=manager)
    run_worker()
    change_status(incident=incident, to=Status.RESOLVED, by=manager)
    change_status(incident=incident, to=Status.CLOSED, by=manager, override_reason="drill")
    run_worker()
    assert not slack.channels[IncidentChannel.objects.get(incident=incident).channel_id].is_archived


def test_a_taken_name_gets_a_suffix(slack):
    from tests.chatops.slack_server import Channel

    incident = declare(title="Disk full")
    taken = f"inc-{incident.number}-disk-full"
    slack.channels["COLD"] = Channel(id="COLD", name=taken, is_private=False)
    run_worker()
    assert IncidentChannel.objects.get(incident=incident).name == f"{taken}-2"


def test_slack_down_never_blocks_the_portal_and_the_outbox_catches_up(slack, settings):
    settings.SLACK_API_BASE_URL = "http://127.0.0.1:9/api/"  # nothing listens: connection refused
    commander = ResponderFactory()
    incident = declare(by=commander)  # the portal's own action succeeds
    change_status(incident=incident, to=Status.IDENTIFIED, by=commander)
    assert outbox.deliver_due() >= 1
    row = ChatOutbox.objects.get(incident=incident, action=ChatOutbox.Action.CREATE_CHANNEL)
    assert row.status == "pending" and row.attempts == 1 and "URLError" in row.last_error
    assert row.scheduled_for > timezone.now()

    settings.SLACK_API_BASE_URL = slack.api_url  # Slack is back
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        run_worker()
    assert not ChatOutbox.objects.filter(incident=incident).exclude(status__in=["sent", "cancelled"]).exists()
    texts = [m["text"] for m in slack.channel_named(IncidentChannel.objects.get(incident=incident).name).messages]
    assert any("*Identified*" in t for t in texts)


def test_a_429_is_retried_after_retry_after_by_slack_sdk(slack):
    declare(level="P3")
    slack.fail("conversations.create", ("ratelimit", 0))
    run_worker()
    assert slack.methods().count("conversations.create") == 2  # the 429, then the retry that worked
    assert ChatOutbox.objects.get(action="create_channel").status == "sent"


def test_a_429_that_outlasts_the_client_retries_waits_retry_after_on_the_row(slack, settings):
    settings.SLACK_RATE_LIMIT_RETRIES = 0
    declare(level="P3")
    slack.fail("conversations.create", ("ratelimit", 30))
    before = timezone.now()
    outbox.deliver_due()
    row = ChatOutbox.objects.get(action="create_channel")
    assert row.status == "pending" and "rate limited" in row.last_error
    assert row.scheduled_for >= before + timedelta(seconds=30)
    with time_machine.travel(before + timedelta(seconds=31)):
        run_worker()
    assert ChatOutbox.objects.get(action="create_channel").status == "sent"


def test_temporary_errors_back_off_and_permanent_errors_are_recorded(slack):
    declare(level="P3")
    slack.fail("conversations.create", ("status", 503), ("error", "fatal_error"))
    outbox.deliver_due()
    row = ChatOutbox.objects.get(action="create_channel")
    assert row.status == "pending" and row.attempts == 1
    with time_machine.travel(row.scheduled_for + timedelta(seconds=1)):
        outbox.deliver_due()
    row.refresh_from_db()
    assert row.status == "pending" and row.attempts == 2 and "fatal_error" in row.last_error
    with time_machine.travel(row.scheduled_for + timedelta(seconds=1)):
        run_worker()
    assert ChatOutbox.objects.get(action="create_channel").status == "sent"

    other = declare(level="P3", title="Other")
    slack.fail("conversations.create", ("error", "restricted_action"))
    run_worker()
    failed = ChatOutbox.objects.get(incident=other, action="create_channel")
    assert failed.status == "failed" and "restricted_action" in failed.last_error
    # What needed the channel fails too, saying why, instead of waiting forever.
    welcome = ChatOutbox.objects.get(incident=other, idempotency_key__endswith=":welcome")
    assert welcome.status == "failed" and "does not exist" in welcome.last_error


def test_inviting_an_unlinked_person_finds_them_by_email_and_stores_the_link(slack):
    from oncall.chatops.models import ChatIdentity
    from tests.oncall.factories import PersonFactory

    commander = ResponderFactory(email="ada@example.com")
    person = PersonFactory(user=commander, email="ada@example.com")
    slack.add_user("ada@example.com", "UADA")
    incident = declare(by=commander)
    run_worker()
    assert ChatIdentity.objects.get(person=person).slack_user_id == "UADA"
    assert "UADA" in slack.channels[IncidentChannel.objects.get(incident=incident).channel_id].members
    assert slack.calls_of("users.lookupByEmail") == [{"email": "ada@example.com"}]


def test_severity_change_updates_the_topic(slack, responder):
    incident = declare(by=responder, level="P2")
    run_worker()
    change_severity(incident=incident, severity=severity("P1"), by=responder, reason="spreading")
    run_worker()
    channel = slack.channels[IncidentChannel.objects.get(incident=incident).channel_id]
    assert channel.topic.startswith("P1 High · Investigating")


def test_a_page_is_posted_with_an_acknowledge_button_and_the_acknowledgement_follows(slack, responder):
    from tests.paging.factories import paged_team

    team = paged_team(oncall_channels=("email",))
    incident = declare(by=responder, level="P1", services=[team.service])
    run_worker()
    channel = slack.channels[IncidentChannel.objects.get(incident=incident).channel_id]
    [page] = [m for m in channel.messages if "Paged level 1" in m["text"]]
    [button] = [e for b in page["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == "acknowledge" and button["value"] == str(incident.pk)
    assert button["text"]["text"] == "Acknowledge"

    acknowledge_incident(incident=incident, by=responder)
    run_worker()
    texts = [m["text"] for m in channel.messages]
    assert any(t.startswith(f"{incident.reference}: Acknowledged by") for t in texts)
    # Messages other than pages carry no button.
    later = [m for m in channel.messages if "acknowledged by" in m["text"].lower()]
    assert all(not any(b["type"] == "actions" for b in m["blocks"]) for m in later)

"""Slack's requests into the portal: signed and fresh or 401; answered at once, done by the worker; retries and
duplicates change nothing twice; unlinked or unauthorised Slack users get an ephemeral explanation and nothing
changes."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from incidents.models import Incident, Role, SeverityPolicy, Status, TimelineEntry
from oncall.chatops.models import ChatMessageEntry, InboundRequest, IncidentChannel
from tests.chatops.conftest import (
    SECRET,
    command,
    event,
    interaction,
    link,
    run_worker,
    select,
    signed_post,
    submission,
)
from tests.factories import ResponderFactory, ServiceFactory, ViewerFactory, declare

pytestmark = pytest.mark.django_db


def _incident_with_channel(slack, commander):
    incident = declare(by=commander, level="P1", title="Search is down")
    run_worker()
    return incident, IncidentChannel.objects.get(incident=incident).channel_id


# --- verification ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/chatops/slack/commands/", "/chatops/slack/interactions/", "/chatops/slack/events/"])
def test_unsigned_wrongly_signed_or_stale_requests_are_401_and_stored_nowhere(slack, client, path):
    body = "text=hello&trigger_id=1"
    form = "application/x-www-form-urlencoded"
    assert client.post(path, body, content_type=form).status_code == 401
    assert signed_post(client, path, body, content_type=form, secret="not-the-secret").status_code == 401
    stale = int(time.time()) - 6 * 60
    assert signed_post(client, path, body, content_type=form, timestamp=stale).status_code == 401
    # The signature covers the body: a tampered body fails.
    headers = signed_post.__globals__["slack_api"].sign(body, secret=SECRET)
    tampered = client.generic(
        "POST",
        path,
        b"text=goodbye&trigger_id=1",
        content_type=form,
        HTTP_X_SLACK_REQUEST_TIMESTAMP=headers["X-Slack-Request-Timestamp"],
        HTTP_X_SLACK_SIGNATURE=headers["X-Slack-Signature"],
    )
    assert tampered.status_code == 401
    assert InboundRequest.objects.count() == 0


def test_url_verification_answers_the_challenge(slack, client):
    body = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    response = signed_post(client, "/chatops/slack/events/", body, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_malformed_interaction_payload_is_400_naming_the_field(slack, client):
    response = signed_post(
        client, "/chatops/slack/interactions/", "payload=%7Bnot-json", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and "payload" in response.json()["error"]


# --- slash command ---------------------------------------------------------------------------------------------


def test_slash_command_answers_at_once_and_the_worker_opens_the_declare_modal(slack, client, responder):
    link(responder, "UADA", slack)
    ServiceFactory(name="Checkout API")
    response = command(client, user_id="UADA", trigger_id="13345224609.738474920.8088930838d88f008e0")
    assert response.status_code == 200 and response.content == b""
    assert slack.calls_of("views.open") == []  # nothing done inside the request
    run_worker()
    [opened] = slack.calls_of("views.open")
    assert opened["trigger_id"] == "13345224609.738474920.8088930838d88f008e0"
    view = opened["view"]
    assert view["callback_id"] == "declare" and view["private_metadata"] == "CGENERAL"
    blocks = {block["block_id"]: block for block in view["blocks"]}
    assert set(blocks) == {"title", "severity", "services", "summary"}
    options = blocks["severity"]["element"]["options"]
    assert [o["value"] for o in options] == ["P0", "P1", "P2", "P3"]
    # The guide's descriptions, as the severity table in the portal has them.
    assert options[0]["description"]["text"] == SeverityPolicy.objects.get(level="P0").description[:75]
    assert options[0]["text"]["text"] == "P0 Critical"
    assert "Checkout API" in json.dumps(blocks["services"])


@pytest.mark.parametrize("who", ["unlinked", "viewer", "inactive"])
def test_unlinked_or_unauthorised_slack_user_gets_an_ephemeral_explanation(slack, client, who):
    if who == "viewer":
        link(ViewerFactory(), "UVIEW", slack)
    if who == "inactive":
        link(ResponderFactory(is_active=False), "UVIEW", slack)
    command(client, user_id="UVIEW", response_url=slack.response_url("cmd"))
    run_worker()
    assert slack.calls_of("views.open") == []
    [(name, body)] = slack.responses
    assert name == "cmd" and body["response_type"] == "ephemeral"
    expected = {
        "unlinked": "not linked to anyone in the Incident Portal",
        "viewer": "need the responder role",
        "inactive": "no active Incident Portal login",
    }[who]
    assert expected in body["text"] and "nothing was changed" in body["text"]


def test_declare_modal_submission_declares_through_the_same_service(slack, client, responder):
    link(responder, "UADA", slack)
    service = ServiceFactory(name="Checkout API")
    payload = submission(
        user_id="UADA",
        callback_id="declare",
        metadata="CGENERAL",
        values={
            "title": "Checkout errors",
            "severity": select("P1"),
            "services": {"type": "multi_static_select", "selected_options": [{"value": str(service.pk)}]},
            "summary": "5xx on /pay",
        },
    )
    response = interaction(client, payload)
    assert response.status_code == 200 and response.content == b""
    assert not Incident.objects.exists()
    run_worker()
    incident = Incident.objects.get()
    assert (incident.title, incident.severity.level, incident.summary) == ("Checkout errors", "P1", "5xx on /pay")
    assert list(incident.services.all()) == [service] and incident.created_by == responder
    # The submitter hears back; the channel exists.
    assert any(
        incident.reference in str(p) for p in slack.calls_of("chat.postEphemeral") + slack.calls_of("chat.postMessage")
    )
    assert IncidentChannel.objects.get(incident=incident).channel_id


def test_declare_submission_from_an_unlinked_user_is_refused_in_the_form(slack, client):
    payload = submission(
        user_id="UNOBODY", callback_id="declare", metadata="C1", values={"title": "x", "severity": select("P1")}
    )
    response = interaction(client, payload)
    body = response.json()
    assert body["response_action"] == "errors" and "not linked" in body["errors"]["title"]
    assert InboundRequest.objects.count() == 0 and not Incident.objects.exists()


def test_the_same_submission_delivered_twice_declares_once(slack, client, responder):
    link(responder, "UADA", slack)
    payload = submission(
        user_id="UADA",
        callback_id="declare",
        metadata="C1",
        values={"title": "Once", "severity": select("P2")},
        view_id="VSAME",
    )
    interaction(client, payload)
    interaction(client, payload, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    run_worker()
    assert Incident.objects.filter(title="Once").count() == 1
    assert InboundRequest.objects.get().duplicates == 1


def test_domain_errors_come_back_as_an_ephemeral_message(slack, client, responder):
    link(responder, "UADA", slack)
    payload = submission(
        user_id="UADA", callback_id="declare", metadata="CGENERAL", values={"title": "   ", "severity": select("P2")}
    )
    interaction(client, payload)
    run_worker()
    assert not Incident.objects.exists()
    messages = slack.calls_of("chat.postEphemeral") + slack.calls_of("chat.postMessage")
    assert any("Give the incident a short title" in m.get("text", "") for m in messages)


# --- inside an incident channel ----------------------------------------------------------------------------------


def test_slash_command_in_an_incident_channel_offers_the_actions(slack, client, responder):
    link(responder, "UADA", slack)
    incident, channel_id = _incident_with_channel(slack, responder)
    command(client, user_id="UADA", channel_id=channel_id, response_url=slack.response_url("menu"))
    run_worker()
    [(_, body)] = slack.responses
    buttons = [e["action_id"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["open:update", "open:status", "open:severity", "open:role", "open:page", "open:resolve"]
    assert incident.reference in body["text"]


def test_status_subcommand_opens_the_status_modal_with_allowed_transitions(slack, client, responder):
    link(responder, "UADA", slack)
    incident, channel_id = _incident_with_channel(slack, responder)
    command(client, user_id="UADA", channel_id=channel_id, text="status")
    run_worker()
    [opened] = slack.calls_of("views.open")
    assert opened["view"]["callback_id"] == "incident:status" and opened["view"]["private_metadata"] == str(incident.pk)
    values = [o["value"] for o in opened["view"]["blocks"][0]["element"]["options"]]
    assert values == ["identified", "monitoring", "resolved"]


def test_role_assigned_from_slack_to_an_unlinked_slack_user_changes_nothing(slack, client, responder):
    link(responder, "UADA", slack)
    incident, _ = _incident_with_channel(slack, responder)
    payload = submission(
        user_id="UADA",
        callback_id="incident:role",
        metadata=str(incident.pk),
        values={"role": select(Role.SCRIBE), "holder": {"type": "users_select", "selected_user": "USTRANGER"}},
    )
    interaction(client, payload)
    run_worker()
    assert not incident.role_assignments.filter(role=Role.SCRIBE).exists()
    assert any("<@USTRANGER> is not linked" in m.get("text", "") for m in slack.calls_of("chat.postMessage"))


def test_restricted_incident_is_out_of_reach_of_a_responder_who_is_not_on_it(slack, client):
    from tests.factories import SecurityFactory

    security = SecurityFactory()
    outsider = ResponderFactory()
    link(outsider, "UOUT", slack)
    incident = declare(by=security, is_restricted=True, title="Leak")
    run_worker()
    payload = submission(
        user_id="UOUT", callback_id="incident:resolve", metadata=str(incident.pk), values={"note": "x"}
    )
    interaction(client, payload)
    run_worker()
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    assert any("cannot see that incident" in m.get("text", "") for m in slack.calls_of("chat.postMessage"))


def test_acknowledge_button_acknowledges_as_the_linked_person(slack, client, responder):
    other = ResponderFactory()
    link(other, "UBOB", slack)
    incident, channel_id = _incident_with_channel(slack, responder)
    payload = {
        "type": "block_actions",
        "user": {"id": "UBOB"},
        "channel": {"id": channel_id},
        "trigger_id": "ack-1",
        "response_url": slack.response_url("ack"),
        "actions": [{"action_id": "acknowledge", "block_id": "page", "value": str(incident.pk), "type": "button"}],
    }
    assert interaction(client, payload).status_code == 200
    run_worker()
    incident.refresh_from_db()
    assert incident.acknowledged_by == other
    assert slack.responses[-1][1]["text"] == f"{incident.reference} acknowledged: escalation stopped."
    # The acknowledger is invited to the channel.
    assert "UBOB" in slack.channels[channel_id].members


# --- messages onto the timeline ---------------------------------------------------------------------------------


def test_pushpin_reaction_puts_the_message_on_the_timeline_with_its_author_and_time_once(slack, client, responder):
    author = ResponderFactory(first_name="Grace", last_name="Hopper")
    link(responder, "UADA", slack)
    link(author, "UGRACE", slack)
    incident, channel_id = _incident_with_channel(slack, responder)
    said = timezone.now() - timedelta(minutes=20)
    ts = f"{said.timestamp():.6f}"
    slack.add_message(channel_id, user="UGRACE", text="Rolled back deploy 42", ts=ts)
    reaction = {
        "type": "reaction_added",
        "user": "UADA",
        "reaction": "pushpin",
        "item": {"type": "message", "channel": channel_id, "ts": ts},
        "item_user": "UGRACE",
        "event_ts": f"{time.time():.6f}",
    }

    assert event(client, reaction, event_id="Ev01").status_code == 200
    event(client, reaction, event_id="Ev01", headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    event(client, {**reaction, "user": "UGRACE"}, event_id="Ev02")  # someone else pins it too
    run_worker()

    [entry] = TimelineEntry.objects.filter(incident=incident, body__contains="Rolled back deploy 42")
    assert entry.author == author
    assert entry.occurred_at == datetime.fromtimestamp(float(ts), tz=UTC)
    assert "From Slack: Grace Hopper" in entry.body
    assert ChatMessageEntry.objects.count() == 1
    assert InboundRequest.objects.get(dedupe_key="slack:event:Ev01").duplicates == 1


def test_other_reactions_and_other_channels_change_nothing(slack, client, responder):
    link(responder, "UADA", slack)
    incident, channel_id = _incident_with_channel(slack, responder)
    slack.add_message(channel_id, user="UADA", text="hello", ts="1700000001.000001")
    event(
        client,
        {
            "type": "reaction_added",
            "user": "UADA",
            "reaction": "tada",
            "item": {"type": "message", "channel": channel_id, "ts": "1700000001.000001"},
        },
        event_id="Ev10",
    )
    event(
        client,
        {
            "type": "reaction_added",
            "user": "UADA",
            "reaction": "pushpin",
            "item": {"type": "message", "channel": "CRANDOM", "ts": "1.0"},
        },
        event_id="Ev11",
    )
    before = incident.timeline.count()
    run_worker()
    assert incident.timeline.count() == before


def test_add_to_timeline_shortcut(slack, client, responder):
    link(responder, "UADA", slack)
    incident, channel_id = _incident_with_channel(slack, responder)
    ts = f"{timezone.now().timestamp():.6f}"
    payload = {
        "type": "message_action",
        "callback_id": "add_to_timeline",
        "trigger_id": "sc-1",
        "user": {"id": "UADA"},
        "channel": {"id": channel_id},
        "message": {"type": "message", "user": "UNOTLINKED", "text": "Error rate back to 0.1%", "ts": ts},
        "response_url": slack.response_url("shortcut"),
    }
    interaction(client, payload)
    run_worker()
    entry = TimelineEntry.objects.get(incident=incident, body__contains="Error rate back to 0.1%")
    assert entry.author is None and "From Slack: Slack user UNOTLINKED" in entry.body
    assert slack.responses[-1][1]["text"] == f"Added to the {incident.reference} timeline."


def test_page_responders_from_slack_pages_them_through_paging(slack, client, responder):
    from oncall.paging.models import Page
    from tests.paging.factories import paged_team

    team = paged_team(name="Payments", oncall_channels=("email",))
    bob = ResponderFactory(first_name="Bob")
    link(responder, "UADA", slack)
    link(bob, "UBOB", slack)
    incident, channel_id = _incident_with_channel(slack, responder)
    payload = submission(
        user_id="UADA",
        callback_id="incident:page",
        metadata=str(incident.pk),
        values={
            "people": {"type": "multi_users_select", "selected_users": ["UBOB"]},
            "team": select(str(team.team.pk)),
            "message": "Card gateway down, need payments on-call",
        },
    )
    interaction(client, payload)
    run_worker()
    added = Page.objects.filter(incident=incident, is_added=True)
    assert {(p.target_person_id, p.team_id) for p in added} == {(bob.person.pk, None), (None, team.team.pk)}
    texts = [m["text"] for m in slack.channels[channel_id].messages]
    assert any("paged Bob" in t and "Card gateway down" in t for t in texts)
    pages = [m for m in slack.channels[channel_id].messages if "paged Payments" in m["text"]]
    assert pages and any(b["type"] == "actions" for b in pages[0]["blocks"])


def test_paging_an_unlinked_slack_user_pages_nobody(slack, client, responder):
    from oncall.paging.models import Page

    link(responder, "UADA", slack)
    incident, _ = _incident_with_channel(slack, responder)
    payload = submission(
        user_id="UADA",
        callback_id="incident:page",
        metadata=str(incident.pk),
        values={"people": {"type": "multi_users_select", "selected_users": ["USTRANGER"]}},
    )
    interaction(client, payload)
    run_worker()
    assert not Page.objects.filter(incident=incident, is_added=True).exists()
    assert any("nobody was paged" in m.get("text", "") for m in slack.calls_of("chat.postMessage"))

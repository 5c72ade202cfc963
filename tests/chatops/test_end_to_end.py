"""A responder who never opens the browser runs an incident from Slack, and the incident page shows all of it:
/incident → modal → declared → channel created → role assigned from Slack → 📌 message on the timeline →
resolved from Slack."""

import time

import pytest
from django.utils import timezone

from incidents.models import Incident, Role, Status
from oncall.chatops.models import IncidentChannel
from tests.chatops.conftest import command, event, interaction, link, run_worker, select, submission
from tests.factories import ResponderFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def test_run_an_incident_from_slack(slack, client):
    ada = ResponderFactory(first_name="Ada", last_name="Lovelace")
    grace = ResponderFactory(first_name="Grace", last_name="Hopper")
    link(ada, "UADA", slack)
    link(grace, "UGRACE", slack)
    service = ServiceFactory(name="Checkout API")

    # /incident in #general opens the declare modal.
    assert command(client, user_id="UADA", channel_id="CGENERAL", trigger_id="t-declare").status_code == 200
    run_worker()
    [opened] = slack.calls_of("views.open")
    assert opened["view"]["callback_id"] == "declare"

    # The modal is submitted: the incident is declared, with Ada as Incident Commander.
    interaction(
        client,
        submission(
            user_id="UADA",
            callback_id="declare",
            metadata="CGENERAL",
            values={
                "title": "Payments failing",
                "severity": select("P1"),
                "services": {"type": "multi_static_select", "selected_options": [{"value": str(service.pk)}]},
                "summary": "Card payments return 502",
            },
        ),
    )
    run_worker()
    incident = Incident.objects.get(title="Payments failing")
    assert incident.created_by == ada

    # Its channel exists, with the topic, Ada in it, the declaration announced.
    stored = IncidentChannel.objects.get(incident=incident)
    channel = slack.channels[stored.channel_id]
    assert channel.name == f"inc-{incident.number}-payments-failing"
    assert "IC: Ada Lovelace" in channel.topic and "UADA" in channel.members
    assert any(incident.reference in m["text"] for m in slack.channels["CANNOUNCE"].messages)

    # /incident in the channel → "Assign a role" → Grace becomes Technical Lead.
    command(client, user_id="UADA", channel_id=channel.id, text="role", trigger_id="t-role")
    run_worker()
    assert slack.calls_of("views.open")[-1]["view"]["callback_id"] == "incident:role"
    interaction(
        client,
        submission(
            user_id="UADA",
            callback_id="incident:role",
            metadata=str(incident.pk),
            values={"role": select(Role.TECHNICAL_LEAD), "holder": {"type": "users_select", "selected_user": "UGRACE"}},
        ),
    )
    run_worker()
    assert incident.role_assignments.get(role=Role.TECHNICAL_LEAD, relieved_at__isnull=True).holder == grace
    assert "UGRACE" in channel.members

    # Grace says something in the channel; Ada pins it.
    ts = f"{timezone.now().timestamp():.6f}"
    slack.add_message(channel.id, user="UGRACE", text="Root cause: expired TLS certificate on the card gateway", ts=ts)
    event(
        client,
        {
            "type": "reaction_added",
            "user": "UADA",
            "reaction": "pushpin",
            "item": {"type": "message", "channel": channel.id, "ts": ts},
            "event_ts": f"{time.time():.6f}",
        },
        event_id="EvPIN",
    )
    run_worker()

    # Resolved from Slack.
    interaction(
        client,
        submission(
            user_id="UADA",
            callback_id="incident:resolve",
            metadata=str(incident.pk),
            values={"note": "Certificate renewed"},
        ),
    )
    run_worker()
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED

    # The channel heard all of it.
    texts = "\n".join(m["text"] for m in channel.messages)
    assert "Grace Hopper is now *Technical Lead*" in texts
    assert "to *Resolved*" in texts
    assert "· Resolved ·" in channel.topic

    # The incident page shows all of it.
    client.force_login(ada)
    page = client.get(incident.get_absolute_url()).content.decode()
    assert "Payments failing" in page and "Resolved" in page
    assert f"#{channel.name}" in page and f"https://acme.slack.com/archives/{channel.id}" in page
    assert "Grace Hopper is now <strong>Technical Lead</strong>" in page
    assert "Root cause: expired TLS certificate on the card gateway" in page
    assert "From Slack: Grace Hopper" in page
    assert "Certificate renewed" in page
    assert "Checked (Detection): Incident channel created" in page

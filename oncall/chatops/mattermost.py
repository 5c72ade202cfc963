"""Mattermost: the `/incident` slash command (token-verified, answered through its response_url) and channel posts
(outbox action mm_post to MATTERMOST_CHANNEL_ID). Per-incident Mattermost channels are not built.

    /incident declare P1 Checkout is failing      declare (the user becomes Incident Commander)
    /incident status INC-12 identified [note]     change status
    /incident resolve INC-12 [note]               resolve
    /incident ack INC-12                          acknowledge (stops escalation)
    /incident note INC-12 text                    add a timeline note
"""

from __future__ import annotations

import json
import urllib.request

from django.conf import settings

from incidents.errors import DomainError
from incidents.models import Incident, SeverityPolicy, Status
from incidents.services.entries import add_timeline_entry
from incidents.services.status import acknowledge_incident, change_status, declare_incident

from . import messages
from .identity import NotAllowed, actor_for, visible_incident

HELP = (
    "Usage: `/incident declare P1 <title>` · `status INC-n <status> [note]` · `resolve INC-n [note]` · "
    "`ack INC-n` · `note INC-n <text>`"
)


def reply(response_url: str, text: str) -> None:
    if not response_url:
        return
    request = urllib.request.Request(  # noqa: S310 - Mattermost's own response_url for this command
        response_url,
        data=json.dumps({"response_type": "ephemeral", "text": text}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=settings.SLACK_TIMEOUT):  # noqa: S310
        pass


def _incident(user, reference: str) -> Incident:
    number = reference.upper().removeprefix("INC-")
    if not number.isdigit():
        raise DomainError(f"{reference!r} is not an incident reference such as INC-12.", field="incident")
    found = Incident.objects.filter(number=int(number)).values_list("pk", flat=True).first()
    if found is None:
        raise NotAllowed(f"There is no {reference.upper()} you can see; nothing was changed.")
    return visible_incident(user, found)


def handle_command(payload: dict) -> str:
    words = (payload.get("text") or "").split()
    sub = words[0].lower() if words else "help"
    response_url = payload.get("response_url", "")
    try:
        user = actor_for(mattermost_user_id=payload.get("user_id", ""))
        if sub == "declare" and len(words) >= 3:
            severity = SeverityPolicy.objects.filter(level=words[1].upper()).first()
            if severity is None:
                raise DomainError("Say the severity first: P0, P1, P2 or P3.", field="severity")
            incident = declare_incident(title=" ".join(words[2:]), severity=severity, by=user)
            text = f"{incident.reference} declared ({severity.level}): {messages.incident_url(incident.reference)}"
        elif sub == "status" and len(words) >= 3:
            incident = _incident(user, words[1])
            change_status(incident=incident, to=words[2].lower(), by=user, note=" ".join(words[3:]))
            text = f"{incident.reference} is now {Status(words[2].lower()).label}."
        elif sub == "resolve" and len(words) >= 2:
            incident = _incident(user, words[1])
            change_status(incident=incident, to=Status.RESOLVED, by=user, note=" ".join(words[2:]))
            text = f"{incident.reference} resolved."
        elif sub in ("ack", "acknowledge") and len(words) >= 2:
            incident = _incident(user, words[1])
            acknowledge_incident(incident=incident, by=user)
            text = f"{incident.reference} acknowledged: escalation stopped."
        elif sub == "note" and len(words) >= 3:
            incident = _incident(user, words[1])
            add_timeline_entry(incident=incident, by=user, body=" ".join(words[2:]))
            text = f"Noted on the {incident.reference} timeline."
        else:
            text = HELP
    except NotAllowed as refusal:
        text = refusal.message.replace("Slack", "Mattermost")
    except DomainError as error:
        text = f"Nothing changed: {error.message}"
    reply(response_url, text)
    return text

"""Block Kit messages and modals. Plain functions of plain data, so the README previews and the tests show exactly
what Slack receives. Restricted incidents: their messages go only to their own private channel (see outbox)."""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.text import slugify

from incidents.models import Role, SeverityPolicy, Status, UpdateStatus
from oncall.models import Team

SEVERITY_EMOJI = {
    "P0": ":red_circle:",
    "P1": ":large_orange_circle:",
    "P2": ":large_yellow_circle:",
    "P3": ":white_circle:",
}
ACTIONS = [
    ("update", "Post an update"),
    ("status", "Change status"),
    ("severity", "Change severity"),
    ("role", "Assign a role"),
    ("page", "Page responders"),
    ("resolve", "Resolve"),
]


def channel_name(number: int, title: str) -> str:
    """#inc-<number>-<slug>: Slack names are lowercase letters, digits, hyphens and underscores, at most 80."""
    slug = slugify(title)[: 80 - len(f"inc-{number}-")].strip("-")
    return f"inc-{number}-{slug}" if slug else f"inc-{number}"


def mrkdwn(markdown: str) -> str:
    """The portal's Markdown to Slack mrkdwn for the few forms the timeline uses (bold, links)."""
    text = re.sub(r"\*\*(.+?)\*\*", r"*\1*", markdown)
    return re.sub(r"\[([^\]]+)\]\((https?://[^)]+)\)", r"<\2|\1>", text)


def escape(text: str) -> str:
    # Slack's three control characters, as its formatting guide asks.
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def incident_url(reference: str) -> str:
    return f"{settings.SITE_URL}/incidents/{reference}/"


def topic(*, severity: str, status: str, commander: str, url: str) -> str:
    return f"{severity} · {status} · IC: {commander or 'unassigned'} · {url}"[:250]


def declaration(incident, *, commander: str, channel: dict | None, announcement: bool) -> tuple[str, list]:
    sev = incident.severity
    emoji = SEVERITY_EMOJI.get(sev.level, "")
    url = incident_url(incident.reference)
    text = f"{emoji} {incident.reference} declared ({sev.level} {sev.name}): {escape(incident.title)}"
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{sev.level} {escape(sev.name)}: {escape(sev.description)}"},
        {"type": "mrkdwn", "text": f"*Status*\n{incident.get_status_display()}"},
        {"type": "mrkdwn", "text": f"*Incident Commander*\n{commander or 'unassigned'}"},
    ]
    if channel:
        fields.append({"type": "mrkdwn", "text": f"*Channel*\n<#{channel['id']}>"})
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{incident.reference}: {incident.title}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text}, "fields": fields},
    ]
    if incident.summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape(incident.summary)[:2900]}})
    hint = (
        "Join its channel to help; updates are posted there"
        if announcement
        else "Use `/incident` in this channel to update, change status or severity, assign roles, page and resolve."
    )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"<{url}|{incident.reference} in the portal> · {hint}"}],
        }
    )
    return text, blocks


def timeline_post(*, reference: str, body: str, who: str, acknowledge: bool = False, incident_id: int = 0):
    text = f"{mrkdwn(escape(body))}"
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{reference} · by {who}"}]},
    ]
    if acknowledge:
        blocks.append(
            {
                "type": "actions",
                "block_id": "page",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "acknowledge",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Acknowledge"},
                        "value": str(incident_id),
                    }
                ],
            }
        )
    return f"{reference}: {text}", blocks


def action_menu(incident) -> list:
    """The ephemeral answer to `/incident` inside an incident channel."""
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*{incident.reference}* {escape(incident.title)}: {incident.severity.level}, "
                f"{incident.get_status_display()}. What do you want to do?",
            },
        },
        {
            "type": "actions",
            "block_id": "incident_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": f"open:{key}",
                    "text": {"type": "plain_text", "text": label},
                    "value": str(incident.pk),
                }
                for key, label in ACTIONS
            ],
        },
    ]


def _option(value: str, text: str, description: str = "") -> dict:
    option = {"text": {"type": "plain_text", "text": text[:75]}, "value": value}
    if description:
        option["description"] = {"type": "plain_text", "text": description[:75]}
    return option


def _input(block_id: str, label: str, element: dict, *, optional: bool = False, hint: str = "") -> dict:
    block = {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


def _text(action_id: str, *, multiline: bool = False, initial: str = "") -> dict:
    element = {"type": "plain_text_input", "action_id": action_id, "multiline": multiline}
    if initial:
        element["initial_value"] = initial
    return element


def _select(action_id: str, options: list[dict]) -> dict:
    return {"type": "static_select", "action_id": action_id, "options": options}


def _modal(callback_id: str, title: str, blocks: list, *, metadata: str, submit: str = "Submit") -> dict:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": title[:24]},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def declare_modal(*, channel_id: str, services) -> dict:
    severities = [
        _option(s.level, f"{s.level} {s.name}", s.description) for s in SeverityPolicy.objects.order_by("rank")
    ]
    blocks = [
        _input("title", "Title", _text("value")),
        _input(
            "severity",
            "Severity",
            _select("value", severities),
            hint="P0 complete outage · P1 major feature unavailable · P2 minor feature broken · P3 cosmetic",
        ),
    ]
    service_options = [_option(str(s.pk), s.name) for s in services[:100]]
    if service_options:
        blocks.append(
            _input(
                "services",
                "Affected services",
                {"type": "multi_static_select", "action_id": "value", "options": service_options},
                optional=True,
            )
        )
    blocks.append(_input("summary", "Summary", _text("value", multiline=True), optional=True))
    return _modal("declare", "Declare an incident", blocks, metadata=channel_id, submit="Declare")


def action_modal(action: str, incident) -> dict:
    metadata = str(incident.pk)
    ref = incident.reference
    if action == "update":
        statuses = [
            _option(s.value, s.label)
            for s in (UpdateStatus.INVESTIGATING, UpdateStatus.FIXING, UpdateStatus.MONITORING, UpdateStatus.RESOLVED)
        ]
        blocks = [
            _input("status", "Status", _select("value", statuses)),
            _input("what_we_know", "What we know", _text("value", multiline=True)),
            _input("what_we_are_doing", "What we're doing", _text("value", multiline=True), optional=True),
            _input("impact", "Impact", _text("value", multiline=True), optional=True),
            _input("eta", "ETA", _text("value"), optional=True),
        ]
        return _modal("incident:update", f"Update {ref}", blocks, metadata=metadata, submit="Post")
    if action == "status":
        options = [_option(s.value, s.label) for s in incident.allowed_transitions()]
        blocks = [
            _input("status", "New status", _select("value", options)),
            _input("note", "Note", _text("value", multiline=True), optional=True),
        ]
        return _modal("incident:status", f"Status of {ref}", blocks, metadata=metadata)
    if action == "severity":
        options = [
            _option(s.level, f"{s.level} {s.name}", s.description)
            for s in SeverityPolicy.objects.exclude(pk=incident.severity_id).order_by("rank")
        ]
        blocks = [
            _input("severity", "New severity", _select("value", options)),
            _input("reason", "Why", _text("value")),
        ]
        return _modal("incident:severity", f"Severity of {ref}", blocks, metadata=metadata)
    if action == "role":
        options = [_option(r.value, r.label) for r in Role]
        blocks = [
            _input("role", "Role", _select("value", options)),
            _input("holder", "Person", {"type": "users_select", "action_id": "value"}),
        ]
        return _modal("incident:role", f"Roles of {ref}", blocks, metadata=metadata, submit="Assign")
    if action == "page":
        teams = [_option(str(team.pk), team.name) for team in Team.objects.order_by("name")[:100]]
        blocks = [
            _input(
                "people",
                "Page these people",
                {"type": "multi_users_select", "action_id": "value"},
                optional=True,
                hint="Each is paged by their own notification rules.",
            )
        ]
        if teams:
            blocks.append(
                _input(
                    "team", "Page a team", _select("value", teams), optional=True, hint="Through its escalation policy."
                )
            )
        blocks.append(_input("message", "Message", _text("value", multiline=True), optional=True))
        return _modal("incident:page", f"Page for {ref}", blocks, metadata=metadata, submit="Page")
    if action == "resolve":
        blocks = [_input("note", "How was it resolved?", _text("value", multiline=True), optional=True)]
        return _modal("incident:resolve", f"Resolve {ref}", blocks, metadata=metadata, submit="Resolve")
    raise ValueError(action)


STATUS_LABELS = dict(Status.choices)

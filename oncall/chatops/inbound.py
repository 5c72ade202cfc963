"""What a verified request from chat does, run by Celery (tasks.process_inbound) after the HTTP answer went back.

Every action runs as the portal user of the Person linked to the chat user, through the same incidents services as
the page and the API. An unlinked or unauthorised chat user gets an ephemeral explanation and nothing changes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import IntegrityError, transaction

from incidents.errors import DomainError
from incidents.models import Incident, Role, Service, SeverityPolicy, Status, UpdateKind
from incidents.services.entries import add_chat_message
from incidents.services.roles import assign_role
from incidents.services.status import acknowledge_incident, change_severity, change_status, declare_incident
from incidents.services.updates import post_status_update
from oncall.models import Person, Team
from oncall.paging.services.responders import add_responders

from . import mattermost, messages, slack_api
from .identity import NotAllowed, actor_for, visible_incident
from .models import ChatIdentity, ChatMessageEntry, InboundRequest, IncidentChannel
from .slack_api import ChatError

logger = logging.getLogger("oncall.chatops")

PIN_REACTIONS = {"pushpin", "round_pushpin"}


def incident_in_channel(channel_id: str) -> Incident | None:
    link = IncidentChannel.objects.filter(channel_id=channel_id).select_related("incident__severity").first()
    return link.incident if link else None


def tell(*, user_id: str, text: str, channel_id: str = "", response_url: str = "", blocks=None) -> None:
    """An ephemeral answer to the Slack user: through response_url when there is one, else chat.postEphemeral in the
    channel, else a direct message."""
    body = {"text": text, **({"blocks": blocks} if blocks else {})}
    try:
        if response_url:
            slack_api.respond(response_url, body)
            return
        if channel_id:
            slack_api.call("chat.postEphemeral", channel=channel_id, user=user_id, **body)
            return
    except ChatError as error:
        logger.info("ephemeral answer failed (%s); sending a direct message", error.message)
    slack_api.call("chat.postMessage", channel=user_id, **body)


# --- dispatch ------------------------------------------------------------------------------------------------


def process(row: InboundRequest) -> str:
    payload = row.payload
    if row.provider == "mattermost":
        return mattermost.handle_command(payload)
    if row.kind == InboundRequest.Kind.COMMAND:
        return handle_command(payload)
    if row.kind == InboundRequest.Kind.INTERACTION:
        kind = payload.get("type")
        if kind == "block_actions":
            return handle_block_action(payload)
        if kind == "view_submission":
            return handle_submission(payload)
        if kind == "message_action":
            return handle_shortcut(payload)
        return f"ignored interaction {kind}"
    event = payload.get("event", {})
    if event.get("type") == "reaction_added" and event.get("reaction") in PIN_REACTIONS:
        item = event.get("item", {})
        return add_message(
            slack_user_id=event.get("user", ""), channel_id=item.get("channel", ""), ts=item.get("ts", ""), message=None
        )
    return f"ignored event {event.get('type')}"


def _guarded(user_id: str, channel_id: str, response_url: str, action) -> str:
    try:
        return action()
    except NotAllowed as refusal:
        tell(user_id=user_id, channel_id=channel_id, response_url=response_url, text=refusal.message)
        return f"refused: {refusal.message}"
    except DomainError as error:
        tell(
            user_id=user_id, channel_id=channel_id, response_url=response_url, text=f"Nothing changed: {error.message}"
        )
        return f"domain error: {error.message}"


# --- slash command -------------------------------------------------------------------------------------------


def handle_command(payload: dict) -> str:
    user_id, channel_id = payload.get("user_id", ""), payload.get("channel_id", "")
    response_url, trigger_id = payload.get("response_url", ""), payload.get("trigger_id", "")
    words = (payload.get("text") or "").split()
    sub = words[0].lower() if words else ""

    def run() -> str:
        user = actor_for(slack_user_id=user_id)
        incident = incident_in_channel(channel_id)
        if sub == "help":
            tell(user_id=user_id, response_url=response_url, text=HELP)
            return "help"
        if incident is None or sub == "declare":
            services = list(Service.objects.order_by("name"))
            slack_api.call(
                "views.open",
                trigger_id=trigger_id,
                view=messages.declare_modal(channel_id=channel_id, services=services),
            )
            return "declare modal opened"
        incident = visible_incident(user, incident.pk)
        if sub in dict(messages.ACTIONS):
            slack_api.call("views.open", trigger_id=trigger_id, view=messages.action_modal(sub, incident))
            return f"{sub} modal opened"
        tell(
            user_id=user_id,
            response_url=response_url,
            text=f"{incident.reference}: what do you want to do?",
            blocks=messages.action_menu(incident),
        )
        return "action menu"

    return _guarded(user_id, channel_id, response_url, run)


HELP = (
    "`/incident` declares an incident (a form opens). Inside an incident channel it offers: update, status, "
    "severity, role, page, resolve (`/incident status` opens that form directly). React with :pushpin: to a "
    "message, or use its “Add to timeline” shortcut, to put it on the incident's timeline."
)


# --- buttons -------------------------------------------------------------------------------------------------


def handle_block_action(payload: dict) -> str:
    user_id = payload.get("user", {}).get("id", "")
    channel_id = (payload.get("channel") or {}).get("id", "")
    response_url = payload.get("response_url", "")
    action = (payload.get("actions") or [{}])[0]
    action_id, value = action.get("action_id", ""), action.get("value", "")

    def run() -> str:
        user = actor_for(slack_user_id=user_id)
        incident = visible_incident(user, value)
        if action_id.startswith("open:"):
            which = action_id.split(":", 1)[1]
            if which not in dict(messages.ACTIONS):
                return f"unknown action {which}"
            slack_api.call(
                "views.open", trigger_id=payload.get("trigger_id", ""), view=messages.action_modal(which, incident)
            )
            return f"{which} modal opened"
        if action_id == "acknowledge":
            acknowledge_incident(incident=incident, by=user)
            tell(
                user_id=user_id,
                channel_id=channel_id,
                response_url=response_url,
                text=f"{incident.reference} acknowledged: escalation stopped.",
            )
            return "acknowledged"
        return f"unknown action {action_id}"

    return _guarded(user_id, channel_id, response_url, run)


# --- modal submissions ---------------------------------------------------------------------------------------


def values(view: dict) -> dict:
    """{block_id: value} from a submitted view's state (plain text, selects, multi-selects, user pickers)."""
    found = {}
    for block_id, actions in (view.get("state", {}).get("values") or {}).items():
        element = actions.get("value") or next(iter(actions.values()), {})
        kind = element.get("type")
        if kind == "plain_text_input":
            found[block_id] = element.get("value") or ""
        elif kind == "static_select":
            found[block_id] = (element.get("selected_option") or {}).get("value", "")
        elif kind == "multi_static_select":
            found[block_id] = [o.get("value") for o in element.get("selected_options") or []]
        elif kind == "users_select":
            found[block_id] = element.get("selected_user") or ""
        elif kind == "multi_users_select":
            found[block_id] = element.get("selected_users") or []
    return found


def _person_for_slack_id(slack_id: str) -> Person:
    identity = ChatIdentity.objects.filter(slack_user_id=slack_id).select_related("person").first()
    if identity is None:
        raise NotAllowed(f"<@{slack_id}> is not linked to a person in the on-call directory, so nobody was paged.")
    return identity.person


def _channel_id(incident: Incident) -> str:
    return IncidentChannel.objects.filter(incident=incident).values_list("channel_id", flat=True).first() or ""


def _user_for_slack_id(slack_id: str):
    identity = ChatIdentity.objects.filter(slack_user_id=slack_id).select_related("person__user").first()
    if identity is None or identity.person.user is None:
        raise NotAllowed(f"<@{slack_id}> is not linked to a portal user, so nothing was changed.")
    return identity.person.user


def handle_submission(payload: dict) -> str:
    view = payload.get("view", {})
    user_id = payload.get("user", {}).get("id", "")
    callback = view.get("callback_id", "")
    data = values(view)
    metadata = view.get("private_metadata", "")
    channel_id = metadata if callback == "declare" else ""

    def run() -> str:
        user = actor_for(slack_user_id=user_id)
        if callback == "declare":
            severity = SeverityPolicy.objects.filter(level=data.get("severity")).first()
            if severity is None:
                raise DomainError("Choose a severity.", field="severity")
            services = Service.objects.filter(pk__in=[v for v in data.get("services", []) if str(v).isdigit()])
            incident = declare_incident(
                title=data.get("title", ""),
                severity=severity,
                by=user,
                summary=data.get("summary", ""),
                services=services,
            )
            tell(
                user_id=user_id,
                channel_id=channel_id,
                text=f"{incident.reference} declared ({severity.level}). Its channel is on its way: "
                f"{messages.incident_url(incident.reference)}",
            )
            return f"declared {incident.reference}"
        if not callback.startswith("incident:"):
            return f"unknown view {callback}"
        incident = visible_incident(user, metadata)
        action = callback.split(":", 1)[1]
        note = data.get("note", "")
        if action == "update":
            post_status_update(
                incident=incident,
                kind=UpdateKind.INTERNAL,
                status=data.get("status", ""),
                by=user,
                what_we_know=data.get("what_we_know", ""),
                what_we_are_doing=data.get("what_we_are_doing", ""),
                impact=data.get("impact", ""),
                eta=data.get("eta", ""),
            )
        elif action == "status":
            change_status(incident=incident, to=data.get("status", ""), by=user, note=note)
        elif action == "resolve":
            change_status(incident=incident, to=Status.RESOLVED, by=user, note=note)
        elif action == "severity":
            severity = SeverityPolicy.objects.filter(level=data.get("severity")).first()
            if severity is None:
                raise DomainError("Choose a severity.", field="severity")
            change_severity(incident=incident, severity=severity, by=user, reason=data.get("reason", ""))
        elif action == "role":
            if data.get("role") not in Role.values:
                raise DomainError("Choose a role.", field="role")
            holder = _user_for_slack_id(data.get("holder", ""))
            assign_role(incident=incident, role=data["role"], holder=holder, by=user)
        elif action == "page":
            people = [_person_for_slack_id(slack_id) for slack_id in data.get("people", [])]
            team = Team.objects.filter(pk=data["team"]).first() if str(data.get("team", "")).isdigit() else None
            if not people and team is None:
                raise DomainError("Choose people or a team to page.", field="people")
            message = data.get("message", "")
            with transaction.atomic():  # all or nothing: one refused page leaves nobody half-paged
                for person in people:
                    add_responders(incident=incident, by=user, person=person, message=message)
                if team is not None:
                    add_responders(incident=incident, by=user, team=team, message=message)
            named = [str(p) for p in people] + ([str(team)] if team else [])
            tell(user_id=user_id, channel_id=_channel_id(incident), text=f"Paging {', '.join(named)}.")
        else:
            return f"unknown action {action}"
        return f"{action} done on {incident.reference}"

    return _guarded(user_id, channel_id, "", run)


# --- messages onto the timeline ------------------------------------------------------------------------------


def handle_shortcut(payload: dict) -> str:
    return add_message(
        slack_user_id=payload.get("user", {}).get("id", ""),
        channel_id=(payload.get("channel") or {}).get("id", ""),
        ts=(payload.get("message") or {}).get("ts", ""),
        message=payload.get("message"),
        response_url=payload.get("response_url", ""),
    )


def _fetch_message(channel_id: str, ts: str) -> dict | None:
    data = slack_api.call("conversations.history", channel=channel_id, latest=ts, oldest=ts, inclusive=True, limit=1)
    for message in data.get("messages") or []:
        if message.get("ts") == ts:
            return message
    data = slack_api.call(
        "conversations.replies", channel=channel_id, ts=ts, latest=ts, oldest=ts, inclusive=True, limit=1
    )
    for message in data.get("messages") or []:
        if message.get("ts") == ts:
            return message
    return None


def add_message(*, slack_user_id: str, channel_id: str, ts: str, message: dict | None, response_url: str = "") -> str:
    def run() -> str:
        user = actor_for(slack_user_id=slack_user_id)
        incident = incident_in_channel(channel_id)
        if incident is None:
            raise NotAllowed("Only messages in an incident's own channel can go on its timeline; nothing was changed.")
        incident = visible_incident(user, incident.pk)
        if ChatMessageEntry.objects.filter(channel_id=channel_id, message_ts=ts).exists():
            return "already on the timeline"
        found = message if message and message.get("text") is not None else _fetch_message(channel_id, ts)
        if found is None:
            raise NotAllowed("That message could not be read from Slack; nothing was changed.")
        author_id = found.get("user", "")
        author = (
            ChatIdentity.objects.filter(slack_user_id=author_id).select_related("person__user").first()
            if author_id
            else None
        )
        author_user = author.person.user if author is not None else None
        said_at = datetime.fromtimestamp(float(ts), tz=UTC)
        name = (
            (author_user.get_full_name() or author_user.get_username())
            if author_user
            else (author.person.name if author else f"Slack user {author_id or 'unknown'}")
        )
        body = f"{found.get('text', '').strip()}\n\n_From Slack: {name} in #{incident.chat_channel.name}_"
        try:
            with transaction.atomic():
                entry = add_chat_message(incident=incident, by=user, author=author_user, body=body, said_at=said_at)
                ChatMessageEntry.objects.create(incident=incident, channel_id=channel_id, message_ts=ts, entry=entry)
        except IntegrityError:
            return "already on the timeline"  # a second 📌 raced the first
        if response_url:
            tell(user_id=slack_user_id, response_url=response_url, text=f"Added to the {incident.reference} timeline.")
        return f"entry {entry.pk}"

    return _guarded(slack_user_id, channel_id, response_url, run)

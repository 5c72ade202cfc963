"""The chat outbox: rows written in the transaction of the change (enqueue_*), sent by a sender that claims them
FOR UPDATE SKIP LOCKED (deliver_due). A Slack outage leaves rows pending, retried with backoff; a 429 waits for its
Retry-After; a permanent error is recorded on the row. The portal's own action never waits for Slack.

Order: a row that needs the incident channel waits (without spending an attempt) until the channel-creation row has
created it; if that failed for good, the row fails too, naming why. Restricted incidents: the only rows written for
them are for their own private channel; the announcement and Mattermost posts are never written (and a sender that
finds one cancels it).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from datetime import timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents.errors import DomainError
from incidents.models import ChecklistItem, ChecklistPhase, Incident, Role, TimelineEntry
from incidents.services.checklist import tick_checklist_item
from oncall.models import Person

from . import messages, slack_api
from .models import ChatIdentity, ChatOutbox, IncidentChannel
from .slack_api import ChatError, RateLimited

logger = logging.getLogger("oncall.chatops")

Action = ChatOutbox.Action
CHANNEL_CREATED_ITEM = "Incident channel created"
# Waiting for the channel to be created costs no attempt; this is how soon the row looks again.
WAIT_FOR_CHANNEL = timedelta(seconds=2)
MAX_BACKOFF = timedelta(minutes=5)


# --- enqueue (inside the caller's transaction) -----------------------------------------------------------------


def enqueue(incident_id: int, action: str, key: str, payload: dict | None = None) -> None:
    ChatOutbox.objects.bulk_create(
        [ChatOutbox(incident_id=incident_id, action=action, idempotency_key=key[:200], payload=payload or {})],
        ignore_conflicts=True,
    )
    transaction.on_commit(partial(wake_sender))


def wake_sender() -> None:
    """Best effort: a lost message delays nothing beyond the next chat outbox tick."""
    try:
        # By name: tasks imports this module.
        current_app.send_task("oncall.chatops.tasks.deliver_chat", expires=max(settings.TIMER_TICK_SECONDS * 10, 30))
    except Exception:  # noqa: BLE001 - the broker may be down; the tick catches up
        logger.warning("could not enqueue deliver_chat; the chat outbox tick will catch up", exc_info=True)


def channel_for(incident_id: int) -> IncidentChannel | None:
    return IncidentChannel.objects.filter(incident_id=incident_id, provider="slack").first()


# --- the sender ------------------------------------------------------------------------------------------------


def due_count() -> int:
    return ChatOutbox.objects.filter(status=ChatOutbox.Status.PENDING, scheduled_for__lte=timezone.now()).count()


def deliver_due(*, budget_seconds: float = 20.0, limit: int = 500) -> int:
    """Send due rows one transaction each until none is due, `limit` rows were sent or the budget is spent."""
    deadline = time.monotonic() + budget_seconds
    done = 0
    while done < limit and time.monotonic() < deadline:
        with transaction.atomic():
            row = (
                ChatOutbox.objects.select_for_update(skip_locked=True)
                .filter(status=ChatOutbox.Status.PENDING, scheduled_for__lte=timezone.now())
                .order_by("id")
                .first()
            )
            if row is None:
                break
            _process(row)
        done += 1
    return done


def _process(row: ChatOutbox) -> None:
    now = timezone.now()
    row.attempts += 1
    try:
        with transaction.atomic():  # a savepoint: a failed send leaves no half of its writes behind
            outcome = SENDERS[row.action](row)
    except _Wait:
        row.attempts -= 1
        row.scheduled_for = now + WAIT_FOR_CHANNEL
        row.save(update_fields=["attempts", "scheduled_for"])
        return
    except _Skip as skip:
        row.status = ChatOutbox.Status.CANCELLED
        row.last_error = skip.reason
        row.save(update_fields=["status", "attempts", "last_error"])
        return
    except ChatError as error:
        row.last_error = error.message[:2000]
        if not error.temporary or row.attempts >= settings.CHATOPS_MAX_ATTEMPTS:
            row.status = ChatOutbox.Status.FAILED
            logger.warning("chat outbox %s failed for good: %s", row.pk, error.message)
        elif isinstance(error, RateLimited):
            row.scheduled_for = now + timedelta(seconds=max(1, error.retry_after or 1))
        else:
            backoff = timedelta(seconds=settings.CHATOPS_RETRY_BACKOFF_SECONDS * 2 ** (row.attempts - 1))
            row.scheduled_for = now + min(backoff, MAX_BACKOFF)
        row.save(update_fields=["status", "attempts", "last_error", "scheduled_for"])
        return
    except Exception as error:  # a bug or a database error: recorded, retried later, never blocking the queue
        logger.exception("chat outbox %s raised", row.pk)
        row.last_error = f"{type(error).__name__}: {error}"[:2000]
        if row.attempts >= settings.CHATOPS_MAX_ATTEMPTS:
            row.status = ChatOutbox.Status.FAILED
        row.scheduled_for = now + MAX_BACKOFF
        row.save(update_fields=["status", "attempts", "last_error", "scheduled_for"])
        return
    row.status = ChatOutbox.Status.SENT
    row.sent_at = now
    row.result = outcome or {}
    row.last_error = ""
    row.save(update_fields=["status", "attempts", "sent_at", "result", "last_error"])


class _Wait(Exception):
    """The incident channel is not created yet."""


class _Skip(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _creation_row(incident_id: int) -> ChatOutbox | None:
    return ChatOutbox.objects.filter(incident_id=incident_id, action=Action.CREATE_CHANNEL).first()


def _require_channel(row: ChatOutbox) -> IncidentChannel:
    channel = channel_for(row.incident_id)
    if channel is not None and channel.channel_id:
        return channel
    creation = _creation_row(row.incident_id)
    if creation is not None and creation.status == ChatOutbox.Status.PENDING:
        raise _Wait()
    reason = creation.last_error if creation is not None else "no channel was requested"
    raise ChatError(f"the incident channel does not exist ({reason})", temporary=False)


def _incident(row: ChatOutbox) -> Incident:
    return Incident.objects.select_related("severity").get(pk=row.incident_id)


def _commander_name(incident: Incident, *, mention: bool = True) -> str:
    assignment = (
        incident.role_assignments.filter(role=Role.INCIDENT_COMMANDER, relieved_at__isnull=True)
        .select_related("holder")
        .first()
    )
    return display_user(assignment.holder, mention=mention) if assignment else ""


def display_user(user, *, mention: bool = True) -> str:
    if user is None:
        return "the portal"
    if mention:
        slack_id = (
            ChatIdentity.objects.filter(person__user=user)
            .exclude(slack_user_id="")
            .values_list("slack_user_id", flat=True)
            .first()
        )
        if slack_id:
            return f"<@{slack_id}>"
    return user.get_full_name() or user.get_username()


def _create_channel(row: ChatOutbox) -> dict:
    channel = IncidentChannel.objects.select_for_update().get(incident_id=row.incident_id, provider="slack")
    if channel.channel_id:
        return {"channel": channel.channel_id, "already": True}
    name = channel.name
    for suffix in range(6):
        candidate = name if suffix == 0 else f"{name[:76]}-{suffix + 1}"
        try:
            data = slack_api.call("conversations.create", name=candidate, is_private=channel.is_private)
            break
        except ChatError as error:
            if error.code != "name_taken":
                raise
    else:
        raise ChatError(f"conversations.create: every name from #{name} is taken", temporary=False)
    channel.channel_id = data["channel"]["id"]
    channel.name = data["channel"].get("name", candidate)
    channel.created_at = timezone.now()
    channel.save(update_fields=["channel_id", "name", "created_at"])
    # The portal ticks the guide's "Incident channel created" itself (the topic and the declaration in the channel
    # were queued with this row, right behind it).
    item = (
        ChecklistItem.objects.filter(
            incident_id=row.incident_id,
            phase=ChecklistPhase.DETECTION,
            text=CHANNEL_CREATED_ITEM,
            checked_at__isnull=True,
        )
        .select_related("incident")
        .first()
    )
    if item is not None:
        try:
            tick_checklist_item(item=item, by=None)
        except DomainError as error:  # closed meanwhile: the channel exists all the same
            logger.info("could not tick %r on incident %s: %s", CHANNEL_CREATED_ITEM, row.incident_id, error)
    return {"channel": channel.channel_id, "name": channel.name}


def _set_topic(row: ChatOutbox) -> dict:
    channel = _require_channel(row)
    if channel.archived_at:
        raise _Skip("the channel is archived")
    incident = _incident(row)
    text = messages.topic(
        severity=f"{incident.severity.level} {incident.severity.name}",
        status=incident.get_status_display(),
        commander=_commander_name(incident, mention=False),
        url=messages.incident_url(incident.reference),
    )
    slack_api.call("conversations.setTopic", channel=channel.channel_id, topic=text)
    return {"topic": text}


def slack_user_for(person: Person) -> str:
    """The Person's Slack id: the stored link, or found with users.lookupByEmail and stored."""
    identity = ChatIdentity.objects.filter(person=person).first()
    if identity is not None and identity.slack_user_id:
        return identity.slack_user_id
    email = person.email or (person.user.email if person.user_id else "")
    if not email:
        raise ChatError(f"{person} has no email to find their Slack account by", temporary=False)
    try:
        data = slack_api.call("users.lookupByEmail", email=email)
    except ChatError as error:
        if error.code == "users_not_found":
            raise ChatError(f"no Slack user has the email of {person}", temporary=False, code=error.code)
        raise
    slack_id = data["user"]["id"]
    if ChatIdentity.objects.filter(slack_user_id=slack_id).exclude(person=person).exists():
        raise ChatError(f"Slack user {slack_id} is already linked to someone else", temporary=False)
    ChatIdentity.objects.update_or_create(person=person, defaults={"slack_user_id": slack_id})
    return slack_id


def _invite(row: ChatOutbox) -> dict:
    channel = _require_channel(row)
    if channel.archived_at:
        raise _Skip("the channel is archived")
    person = Person.objects.filter(user_id=row.payload.get("user_id")).select_related("user").first()
    if person is None:
        raise _Skip("this user is not a person in the on-call directory, so has no Slack link")
    slack_id = slack_user_for(person)
    try:
        slack_api.call("conversations.invite", channel=channel.channel_id, users=slack_id)
    except ChatError as error:
        if error.code not in ("already_in_channel", "cant_invite_self"):
            raise
    return {"user": slack_id}


def _post(row: ChatOutbox) -> dict:
    channel = _require_channel(row)
    if channel.archived_at:
        raise _Skip("the channel is archived")
    incident = _incident(row)
    if row.payload.get("welcome"):
        text, blocks = messages.declaration(
            incident, commander=_commander_name(incident), channel=None, announcement=False
        )
    else:
        entry = TimelineEntry.objects.select_related("author").filter(pk=row.payload.get("entry_id")).first()
        if entry is None:
            raise _Skip("the timeline entry is gone")
        acknowledge = bool(row.payload.get("acknowledge")) and incident.acknowledged_at is None
        text, blocks = messages.timeline_post(
            reference=incident.reference,
            body=entry.body,
            who=display_user(entry.author),
            acknowledge=acknowledge,
            incident_id=incident.pk,
        )
    data = slack_api.call("chat.postMessage", channel=channel.channel_id, text=text, blocks=blocks)
    return {"channel": data.get("channel"), "ts": data.get("ts")}


def _announce(row: ChatOutbox) -> dict:
    incident = _incident(row)
    if incident.is_restricted:
        raise _Skip("restricted incidents are never announced")
    target = settings.SLACK_ANNOUNCEMENT_CHANNELS.get(incident.severity.level)
    if not target:
        raise _Skip(f"no announcement channel for {incident.severity.level}")
    channel = channel_for(row.incident_id)
    if channel is not None and not channel.channel_id:
        creation = _creation_row(row.incident_id)
        if creation is not None and creation.status == ChatOutbox.Status.PENDING:
            raise _Wait()  # announce with the channel's link once it exists
    link = {"id": channel.channel_id} if channel is not None and channel.channel_id else None
    text, blocks = messages.declaration(incident, commander=_commander_name(incident), channel=link, announcement=True)
    data = slack_api.call("chat.postMessage", channel=target, text=text, blocks=blocks)
    return {"channel": data.get("channel"), "ts": data.get("ts")}


def _archive(row: ChatOutbox) -> dict:
    channel = _require_channel(row)
    if channel.archived_at:
        return {"already": True}
    try:
        slack_api.call("conversations.archive", channel=channel.channel_id)
    except ChatError as error:
        if error.code != "already_archived":
            raise
    channel.archived_at = timezone.now()
    channel.save(update_fields=["archived_at"])
    return {"archived": channel.channel_id}


def _mattermost_post(row: ChatOutbox) -> dict:
    incident = _incident(row)
    if incident.is_restricted:
        raise _Skip("restricted incidents are never posted outside their own channel")
    if not (settings.MATTERMOST_URL and settings.MATTERMOST_BOT_TOKEN and settings.MATTERMOST_CHANNEL_ID):
        raise _Skip("Mattermost posting is not configured")
    body = json.dumps({"channel_id": settings.MATTERMOST_CHANNEL_ID, "message": row.payload.get("message", "")})
    request = urllib.request.Request(  # noqa: S310 - the URL is the administrator's MATTERMOST_URL
        f"{settings.MATTERMOST_URL}/api/v4/posts",
        data=body.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {settings.MATTERMOST_BOT_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.SLACK_TIMEOUT) as response:  # noqa: S310
            data = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        if error.code == 429:
            raise RateLimited(
                "mattermost: rate limited", temporary=True, retry_after=int(error.headers.get("Retry-After") or 1)
            )
        raise ChatError(f"mattermost: HTTP {error.code}", temporary=error.code >= 500)
    except OSError as error:
        raise ChatError(f"mattermost: {error}", temporary=True)
    return {"post": data.get("id", "")}


SENDERS = {
    Action.CREATE_CHANNEL: _create_channel,
    Action.SET_TOPIC: _set_topic,
    Action.INVITE: _invite,
    Action.POST: _post,
    Action.ANNOUNCE: _announce,
    Action.ARCHIVE: _archive,
    Action.MATTERMOST_POST: _mattermost_post,
}

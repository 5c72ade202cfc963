"""Chat reacts to incidents through their lifecycle events (incidents.lifecycle). Every handler here runs inside the
publishing service's transaction and only writes outbox rows, so the rows commit with the change and a Slack outage
never blocks or fails it.

- declared: the incident channel (#inc-<number>-<slug>, private for restricted incidents) and, unless restricted,
  the announcement in the severity's announcement channel and the Mattermost post;
- role assigned, acknowledged: the person is invited to the channel; the topic follows the IC, status and severity;
- every timeline entry worth reading in the channel (status, severity, roles, updates, pages, acknowledgements,
  actions) is posted there; pages carry an Acknowledge button;
- closed: the channel is archived (SLACK_ARCHIVE_ON_CLOSE).
"""

from __future__ import annotations

import uuid

from django.conf import settings

from incidents import lifecycle
from incidents.models import EventType, Incident, Role, Status, TimelineEntry

from . import messages, outbox, slack_api
from .models import ChatOutbox, IncidentChannel

Action = ChatOutbox.Action
# What the channel hears: the response itself. Not mirrored: the declaration (the channel opens with its own),
# notes (the channel is where they come from), checklist ticks, joins, alerts, exports and post-mortem work.
MIRRORED_EVENT_TYPES = {
    EventType.ACKNOWLEDGED,
    EventType.STATUS_CHANGED,
    EventType.SEVERITY_CHANGED,
    EventType.CLOSURE_OVERRIDDEN,
    EventType.ROLE_ASSIGNED,
    EventType.ROLE_RELIEVED,
    EventType.ACTION_TAKEN,
    EventType.RUNBOOK_ATTACHED,
    EventType.INTERNAL_UPDATE,
    EventType.STATUS_PAGE_UPDATE,
    EventType.PAGING_STARTED,
    EventType.PAGING_UNAVAILABLE,
    EventType.PAGED,
    EventType.ESCALATED,
    EventType.HOTLINES_ALERTED,
    EventType.PAGE_ACKNOWLEDGED,
    EventType.PAGING_STOPPED,
    EventType.ACKNOWLEDGE_TARGET_MISSED,
    EventType.UPDATE_OVERDUE,
    EventType.CLOSE_REMINDER,
}
# Pages posted with an Acknowledge button.
PAGE_EVENT_TYPES = {EventType.PAGED, EventType.ESCALATED, EventType.HOTLINES_ALERTED}


def _mattermost_posts() -> bool:
    return bool(settings.MATTERMOST_URL and settings.MATTERMOST_BOT_TOKEN and settings.MATTERMOST_CHANNEL_ID)


def _enabled() -> bool:
    # Checked first by every handler: without chat configured, an incident change costs no query here.
    return slack_api.is_configured() or _mattermost_posts()


def _channel(incident: Incident) -> IncidentChannel | None:
    """The incident's Slack channel row, made (and its creation queued) by the first event that needs it."""
    if not slack_api.is_configured():
        return None
    channel = IncidentChannel.objects.filter(incident=incident, provider="slack").first()
    if channel is not None:
        return channel
    if incident.status == Status.CLOSED:
        return None
    channel, _ = IncidentChannel.objects.get_or_create(
        incident=incident,
        provider="slack",
        defaults={"name": messages.channel_name(incident.number, incident.title), "is_private": incident.is_restricted},
    )
    # In this order, so the channel opens with its declaration and topic before any later message.
    outbox.enqueue(incident.pk, Action.CREATE_CHANNEL, f"chat:{incident.pk}:create")
    outbox.enqueue(incident.pk, Action.POST, f"chat:{incident.pk}:welcome", {"welcome": True})
    outbox.enqueue(incident.pk, Action.SET_TOPIC, f"chat:{incident.pk}:topic:created")
    return channel


def _topic(incident_id: int) -> None:
    outbox.enqueue(incident_id, Action.SET_TOPIC, f"chat:{incident_id}:topic:{uuid.uuid4().hex}")


def invite(incident_id: int, user_id: int | None) -> None:
    if user_id is not None:
        outbox.enqueue(incident_id, Action.INVITE, f"chat:{incident_id}:invite:{user_id}", {"user_id": user_id})


def on_declared(event: lifecycle.IncidentDeclared) -> None:
    if not _enabled():
        return
    incident = Incident.objects.select_related("severity").get(pk=event.incident_id)
    if _channel(incident) is not None:
        for holder_id in incident.role_assignments.filter(relieved_at__isnull=True).values_list("holder_id", flat=True):
            invite(incident.pk, holder_id)
        if not incident.is_restricted and settings.SLACK_ANNOUNCEMENT_CHANNELS.get(incident.severity.level):
            outbox.enqueue(incident.pk, Action.ANNOUNCE, f"chat:{incident.pk}:announce")
    if _mattermost_posts() and not incident.is_restricted:
        text, _ = messages.declaration(incident, commander="", channel=None, announcement=True)
        outbox.enqueue(incident.pk, Action.MATTERMOST_POST, f"mm:{incident.pk}:declared", {"message": text})


def on_role_assigned(event: lifecycle.RoleAssigned) -> None:
    if not _enabled():
        return
    incident = Incident.objects.get(pk=event.incident_id)
    if _channel(incident) is None:
        return
    invite(incident.pk, event.holder_id)
    if event.role == Role.INCIDENT_COMMANDER:
        _topic(incident.pk)


def on_acknowledged(event: lifecycle.IncidentAcknowledged) -> None:
    if not _enabled():
        return
    incident = Incident.objects.get(pk=event.incident_id)
    if _channel(incident) is not None and event.by is not None:
        invite(incident.pk, event.by.pk)


def on_status_or_severity(event: lifecycle.LifecycleEvent) -> None:
    if not _enabled():
        return
    incident = Incident.objects.get(pk=event.incident_id)
    if _channel(incident) is not None:
        _topic(incident.pk)


def on_closed(event: lifecycle.IncidentClosed) -> None:
    if not _enabled():
        return
    channel = IncidentChannel.objects.filter(incident_id=event.incident_id, provider="slack").first()
    if channel is not None and settings.SLACK_ARCHIVE_ON_CLOSE:
        outbox.enqueue(event.incident_id, Action.ARCHIVE, f"chat:{event.incident_id}:archive")


def on_timeline_recorded(event: lifecycle.TimelineRecorded) -> None:
    if not _enabled():
        return
    if event.event_type not in MIRRORED_EVENT_TYPES:
        return
    incident = Incident.objects.get(pk=event.incident_id)
    if _channel(incident) is not None:
        payload = {"entry_id": event.entry_id, "acknowledge": event.event_type in PAGE_EVENT_TYPES}
        outbox.enqueue(incident.pk, Action.POST, f"chat:{incident.pk}:entry:{event.entry_id}", payload)
    if _mattermost_posts() and not incident.is_restricted:
        entry = TimelineEntry.objects.only("body").get(pk=event.entry_id)
        message = f"{incident.reference}: {entry.body}"
        outbox.enqueue(
            incident.pk, Action.MATTERMOST_POST, f"mm:{incident.pk}:entry:{event.entry_id}", {"message": message}
        )


def register() -> None:
    lifecycle.subscribe(lifecycle.IncidentDeclared, on_declared, in_transaction=True)
    lifecycle.subscribe(lifecycle.RoleAssigned, on_role_assigned, in_transaction=True)
    lifecycle.subscribe(lifecycle.IncidentAcknowledged, on_acknowledged, in_transaction=True)
    lifecycle.subscribe(lifecycle.StatusChanged, on_status_or_severity, in_transaction=True)
    lifecycle.subscribe(lifecycle.SeverityChanged, on_status_or_severity, in_transaction=True)
    lifecycle.subscribe(lifecycle.IncidentClosed, on_closed, in_transaction=True)
    lifecycle.subscribe(lifecycle.TimelineRecorded, on_timeline_recorded, in_transaction=True)

"""What a notification says: subject, text and HTML (email), short text (SMS, push), spoken text (voice) and the
structured facts webhooks get, for one outbox row or the rows batched into one message."""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string

from . import links
from .channels import OutgoingMessage
from .models import Channel, Notification

FENCED_PURPOSES = {Notification.Purpose.PAGE, Notification.Purpose.HOTLINE}


# --- message content -------------------------------------------------------------------------------------------


def _item(row: Notification) -> dict:
    incident = row.incident
    restricted = incident.is_restricted
    return {
        "row": row,
        "purpose": row.purpose,
        "reference": incident.reference,
        "severity": incident.severity.level,
        "severity_name": incident.severity.name,
        # Restricted incidents are visible only to their responders: a page names the reference, not the subject.
        "title": "Restricted incident" if restricted else incident.title,
        "is_restricted": restricted,
        "impact": "" if restricted else incident.impact,
        "status": incident.get_status_display(),
        "url": settings.SITE_URL + incident.get_absolute_url(),
        "ack_url": links.ack_url(row) if row.purpose in FENCED_PURPOSES and row.ack_nonce else "",
        "ack_code": row.ack_code if row.purpose in FENCED_PURPOSES else "",
        "level": None if row.level is None else row.level + 1,
        "repeat": row.repeat + 1,
        "subject": row.subject,
        # A reminder's text, or the message of whoever added this responder (not for restricted incidents).
        "message": "" if restricted and row.purpose != Notification.Purpose.REMINDER else row.message,
        "channel": row.channel,
    }


def _subject(item: dict) -> str:
    if item["purpose"] == Notification.Purpose.REMINDER:
        return item["subject"] or f"{item['reference']}: reminder"
    prefix = "ESCALATION HOTLINE: " if item["purpose"] == Notification.Purpose.HOTLINE else ""
    level = f" (level {item['level']})" if item["level"] else ""
    return f"{prefix}[{item['severity']}] {item['reference']} {item['title']}{level}: please acknowledge"


def _short_text(item: dict) -> str:
    if item["purpose"] == Notification.Purpose.REMINDER:
        return f"{_subject(item)}. {item['message']}".strip()
    text = f"{_subject(item)}."
    if item["message"]:
        text += f" {item['message']}"
    if item["ack_code"] and item["channel"] == Channel.SMS:
        text += f" Reply ACK {item['ack_code']} (or 1) to acknowledge."
    if item["ack_url"]:
        text += f" Acknowledge: {item['ack_url']}"
    return text


def _spoken(item: dict) -> str:
    level = f", level {item['level']}" if item["level"] else ""
    return f"Severity {item['severity']} incident {item['reference']}: {item['title']}{level}"


def build_message(batch: list[Notification]) -> OutgoingMessage:
    """One message for the leader row and the rows batched with it (same channel and address)."""
    leader = batch[0]
    items = [_item(row) for row in batch]
    if len(items) == 1:
        subject = _subject(items[0])
    else:
        subject = f"{len(items)} notifications: " + ", ".join(sorted({i["reference"] for i in items}))
    context = {"items": items, "recipient": leader.recipient, "subject": subject}
    data = {
        "event": leader.purpose,
        "incident": items[0]["reference"],
        "severity": items[0]["severity"],
        "title": items[0]["title"],
        "level": items[0]["level"],
        "url": items[0]["url"],
        "ack_url": items[0]["ack_url"],
        "notification_id": leader.pk if leader.purpose in FENCED_PURPOSES else None,
        "spoken": "; ".join(_spoken(item) for item in items),
        "items": [
            {k: item[k] for k in ("purpose", "reference", "severity", "title", "level", "url", "ack_url")}
            | {"idempotency_key": item["row"].idempotency_key}
            for item in items
        ],
    }
    if leader.endpoint_id:
        data["format"] = leader.endpoint.format
        data["secret"] = leader.endpoint.secret
    if leader.channel == Channel.EMAIL:
        text = render_to_string("paging/email/notification.txt", context)
        html = render_to_string("paging/email/notification.html", context)
    elif leader.channel in (Channel.SMS, Channel.VOICE, Channel.PUSH):
        text, html = " | ".join(_short_text(item) for item in items), ""
    else:
        text, html = "\n".join(_short_text(item) for item in items), ""
    return OutgoingMessage(
        channel=leader.channel,
        address=leader.address,
        recipient=leader.recipient,
        subject=subject,
        text=text,
        html=html,
        idempotency_key=leader.idempotency_key,
        data=data,
    )

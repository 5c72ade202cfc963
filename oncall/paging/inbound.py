"""What Twilio tells the portal, after the view has verified its signature: status callbacks for messages and
calls, SMS replies that acknowledge ("ACK 4821", or "1"), and the digit pressed on a call (1 acknowledge,
2 escalate).

- A status callback moves the notification's receipt forward only (queued < sent < delivered / failed / no
  answer), under the notification's row lock: a repeated or late callback changes nothing, so a failure brings
  the person's next notification rule forward exactly once.
- Acknowledging goes through links.acknowledge_as, the same service a link or a portal user uses.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents import timeline
from incidents.errors import DomainError
from incidents.timeline import paging as paging_timeline

from . import links, sentmarks
from .delivery import next_rule
from .models import RECEIPT_RANK, UNREACHED_RECEIPTS, Channel, Notification, Page, Receipt
from .services.engine import escalate_now, wake_senders

logger = logging.getLogger("oncall.paging.inbound")

# Twilio's MessageStatus and CallStatus values, as receipts.
MESSAGE_STATUSES = {
    "accepted": Receipt.QUEUED,
    "scheduled": Receipt.QUEUED,
    "queued": Receipt.QUEUED,
    "sending": Receipt.SENT,
    "sent": Receipt.SENT,
    "delivered": Receipt.DELIVERED,
    "read": Receipt.DELIVERED,
    "undelivered": Receipt.FAILED,
    "failed": Receipt.FAILED,
    "canceled": Receipt.FAILED,
}
CALL_STATUSES = {
    "queued": Receipt.QUEUED,
    "initiated": Receipt.QUEUED,
    "ringing": Receipt.SENT,
    "in-progress": Receipt.ANSWERED,
    "answered": Receipt.ANSWERED,
    "completed": Receipt.ANSWERED,
    "busy": Receipt.NO_ANSWER,
    "no-answer": Receipt.NO_ANSWER,
    "failed": Receipt.FAILED,
    "canceled": Receipt.FAILED,
}


class UnknownMessage(DomainError):
    status_code = 404


class BadCallback(DomainError):
    status_code = 400


def record_status(*, sid: str, status: str, error_code: str = "") -> Notification:
    """Apply one status callback to the notification whose message or call has this SID (and the rows batched
    into its message). Returns the leader row; raises UnknownMessage / BadCallback and changes nothing."""
    status = (status or "").strip().lower()
    if not sid:
        raise BadCallback("The callback has no MessageSid or CallSid.", field="MessageSid")
    now = timezone.now()
    with transaction.atomic():
        row = _sent_as(sid)
        if row is None:
            raise UnknownMessage(f"No notification was sent as {sid}.", field="MessageSid")
        table = CALL_STATUSES if row.channel == Channel.VOICE else MESSAGE_STATUSES
        receipt = table.get(status)
        if receipt is None:
            raise BadCallback(f"Unknown status {status!r}.", field="MessageStatus")
        if RECEIPT_RANK.get(row.receipt, 0) >= RECEIPT_RANK[receipt]:
            return row  # a repeat, or news older than what is known: nothing changes
        said = status + (f" (error {error_code})" if error_code else "")
        rows = [row, *Notification.objects.select_for_update().filter(batched_into=row)]
        for each in rows:
            each.receipt, each.receipt_at, each.provider_status = receipt, now, said[:20]
            if receipt in UNREACHED_RECEIPTS:
                each.last_error = f"Twilio: {said}"
        Notification.objects.bulk_update(rows, ["receipt", "receipt_at", "provider_status", "last_error"])
        if receipt in UNREACHED_RECEIPTS:
            for each in rows:
                _reached_nobody(each, said, now)
    return row


def _sent_as(sid: str) -> Notification | None:
    """The notification sent as this SID, locked. A callback can come while the sender's batch is still open: the
    row shows the SID only once the batch commits, its sent mark already; the lock waits for that commit."""
    locked = Notification.objects.select_for_update(of=("self",)).select_related("incident", "page")
    row = locked.filter(provider_id=sid).first()
    if row is not None:
        return row
    marked = sentmarks.notification_for_provider_id(sid)
    if marked is None:  # the batch may have committed (and dropped its marks) in between
        return locked.filter(provider_id=sid).first()
    row = locked.filter(pk=marked).first()
    if row is not None and row.status == Notification.Status.PENDING and sentmarks.restore([row.pk]):
        row.refresh_from_db()  # its sender died before the batch committed
    return row if row is not None and row.provider_id == sid else None


def _reached_nobody(row: Notification, said: str, now) -> None:
    """Bring the person's next notification rule forward to now, while the page still waits for someone."""
    if row.page_id is None or row.page.state not in Page.OPEN_STATES:
        return
    outcome = "not answered" if row.receipt == Receipt.NO_ANSWER else "not delivered"
    fallback = next_rule(row, now)
    if fallback is not None:
        fallback.scheduled_for = now
        fallback.status = Notification.Status.PENDING
        fallback.save(update_fields=["status", "scheduled_for"])
        transaction.on_commit(wake_senders)
    reason = f"{outcome}, Twilio said {said}"
    timeline.record(
        paging_timeline.notification_failed(row.incident, notification=row, reason=reason, fallback=fallback)
    )


@dataclass
class Reply:
    text: str
    acknowledged: bool = False


ACK_REPLY = re.compile(r"^\s*(?:ACK(?:NOWLEDGE)?\s*)?(\d{4})\s*[.!]?\s*$", re.IGNORECASE)
ACK_ANY = re.compile(r"^\s*(?:1|ACK|ACKNOWLEDGE|YES)\s*[.!]?\s*$", re.IGNORECASE)


def acknowledge_by_sms(*, from_number: str, body: str) -> Reply:
    """An SMS reply from a paged number: "ACK 4821" acknowledges the page whose SMS carried code 4821 to this
    number; "1" (or "ACK") the latest page sent to this number that is still open. A wrong, expired or unknown
    code changes nothing and says why."""
    number = (from_number or "").strip()
    text = (body or "").strip()
    if not number:
        raise BadCallback("The message has no From number.", field="From")
    code_match = ACK_REPLY.match(text)
    if code_match is None and not ACK_ANY.match(text):
        return Reply("Not understood. Reply ACK and the 4-digit code from the page (e.g. ACK 4821), or 1.")
    candidates = Notification.objects.select_related("incident", "page", "person__user").filter(
        channel=Channel.SMS,
        address=number,
        status=Notification.Status.SENT,
        purpose__in=[Notification.Purpose.PAGE, Notification.Purpose.HOTLINE],
    )
    if code_match is not None:
        code = code_match.group(1)
        notification = candidates.filter(ack_code=code).order_by("-sent_at", "-pk").first()
        if notification is None:
            return Reply(f"Code {code} matches no page sent to this number. Nothing was acknowledged.")
    else:
        notification = candidates.filter(page__state__in=Page.OPEN_STATES).order_by("-sent_at", "-pk").first()
        if notification is None:
            return Reply("No open page was sent to this number. Nothing was acknowledged.")
    reference = notification.incident.reference
    max_age = timedelta(seconds=settings.PAGING_ACK_LINK_MAX_AGE)
    if notification.sent_at is not None and notification.sent_at < timezone.now() - max_age:
        return Reply(f"The code for {reference} has expired. Open the incident in the portal to acknowledge it.")
    page, acknowledged_now = links.acknowledge_as(notification, via="SMS reply")
    if acknowledged_now:
        return Reply(f"{reference} acknowledged: escalation stopped. {notification_url(notification)}", True)
    return Reply(f"{reference} was already {_page_state(page)}. {notification_url(notification)}")


def notification_url(notification: Notification) -> str:
    return settings.SITE_URL + notification.incident.get_absolute_url()


def _page_state(page: Page | None) -> str:
    if page is None:
        return "handled"
    if page.state == Page.State.ACKNOWLEDGED:
        who = page.acknowledged_by_person or page.acknowledged_by
        return f"acknowledged by {who}" if who else "acknowledged"
    return page.get_state_display().lower()


def pressed_on_call(*, notification_id: int, digits: str) -> str:
    """A key pressed on a page call: 1 acknowledges, 2 escalates now. Returns what the call says next."""
    notification = (
        Notification.objects.select_related("incident", "page", "person__user")
        .filter(pk=notification_id, channel=Channel.VOICE)
        .first()
    )
    if notification is None or notification.page_id is None:
        raise UnknownMessage("No page call with this id.", field="notification")
    reference = notification.incident.reference
    if digits == "1":
        page, acknowledged_now = links.acknowledge_as(notification, via="phone call")
        if acknowledged_now:
            return f"Incident {reference} is acknowledged. Escalation stopped. Goodbye."
        return f"Incident {reference} was already {_page_state(page)}. Goodbye."
    if digits == "2":
        try:
            escalate_now(page_id=notification.page_id, person=notification.person, via="phone call")
        except DomainError as error:
            return f"{error.message} Goodbye."
        return f"Incident {reference} is escalated to the next level now. Goodbye."
    return ""

"""Delivery channels behind one small interface.

A backend has `send(message: OutgoingMessage) -> None` and raises `TemporaryFailure` (retried with backoff) or
`PermanentFailure` (recorded, shown on the timeline, the person's next contact method is tried). Which backend
serves which channel is `settings.PAGING_CHANNEL_BACKENDS` (dotted paths); SMS and voice default to a logging
backend so the portal runs without a vendor SDK. Every message carries the outbox row's idempotency key, which
webhook backends pass on (Idempotency-Key header) so a receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.module_loading import import_string

logger = logging.getLogger("oncall.paging.channels")


class DeliveryError(Exception):
    pass


class TemporaryFailure(DeliveryError):
    """Try again later (connection refused, timeout, 5xx, 429)."""


class PermanentFailure(DeliveryError):
    """Retrying will not help (no address, 4xx, unknown channel)."""


@dataclass
class OutgoingMessage:
    channel: str
    address: str
    recipient: str
    subject: str
    text: str
    html: str = ""
    idempotency_key: str = ""
    # Structured facts for webhooks: incident reference, severity, level, ack URL, batched items ...
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Handed:
    """What a backend knows when `send` returns: the receipt to record ("handed to provider" unless it says more)
    and the provider's id for the message or call, which its status callbacks carry."""

    receipt: str = "handed"
    provider_id: str = ""


class Backend:
    # Shown as a warning (system check, paging admin, on-call page) when a channel in use is served by it.
    delivers_nothing = False

    def send(self, message: OutgoingMessage) -> Handed | None:  # pragma: no cover - interface
        """Send, or raise TemporaryFailure / PermanentFailure. None means "handed to provider"."""
        raise NotImplementedError


class EmailBackend(Backend):
    """Django email (settings.EMAIL_BACKEND), HTML with a plain-text alternative."""

    def send(self, message: OutgoingMessage) -> None:
        if not message.address:
            raise PermanentFailure("No email address.")
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.address],
            headers={"X-Idempotency-Key": message.idempotency_key} if message.idempotency_key else None,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        try:
            email.send(fail_silently=False)
        except (ConnectionError, TimeoutError) as error:
            raise TemporaryFailure(f"Mail server unreachable: {error}") from error
        except OSError as error:
            raise TemporaryFailure(f"Mail delivery failed: {error}") from error
        except Exception as error:  # smtplib's refusals (SMTPRecipientsRefused ...) are permanent
            if isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
                raise PermanentFailure(f"Mail refused: {error}") from error
            if isinstance(error, smtplib.SMTPException):
                raise TemporaryFailure(f"Mail delivery failed: {error}") from error
            raise


class LoggingBackend(Backend):
    """The default for SMS and voice: writes the message to the log, so paging works with no vendor account.
    Replace with a vendor backend by naming it in PAGING_CHANNEL_BACKENDS. Its sends are recorded as
    "logged, not delivered": nobody was reached."""

    delivers_nothing = True

    def send(self, message: OutgoingMessage) -> Handed:
        if not message.address:
            raise PermanentFailure(f"No {message.channel} address.")
        logger.warning(
            "PAGE %s to %s <%s>: %s | %s",
            message.channel,
            message.recipient,
            message.address,
            message.subject,
            message.text.replace("\n", " ")[:500],
        )
        return Handed(receipt="logged")


def _post_json(url: str, body: bytes, headers: dict[str, str]) -> None:
    if not url.startswith(("https://", "http://")):
        raise PermanentFailure(f"Not a web address: {url!r}")
    headers = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=settings.PAGING_WEBHOOK_TIMEOUT) as response:  # noqa: S310
            response.read(1024)
    except urllib.error.HTTPError as error:
        if error.code == 429 or error.code >= 500:
            raise TemporaryFailure(f"Webhook answered {error.code}") from error
        raise PermanentFailure(f"Webhook answered {error.code}") from error
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        raise TemporaryFailure(f"Webhook unreachable: {error}") from error


def slack_payload(message: OutgoingMessage) -> dict:
    """Slack-compatible incoming-webhook JSON: `text` for clients without blocks, plus a section and a button."""
    text = message.text if not message.subject else f"*{message.subject}*\n{message.text}"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}]
    ack_url = message.data.get("ack_url")
    if ack_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"}, "url": ack_url}],
            }
        )
    return {"text": text[:3000], "blocks": blocks}


class SlackWebhookBackend(Backend):
    """Chat: posts to the address when it is a webhook URL (a personal incoming webhook), else to
    settings.PAGING_CHAT_WEBHOOK_URL mentioning the handle."""

    def send(self, message: OutgoingMessage) -> None:
        url = message.address if message.address.startswith(("https://", "http://")) else ""
        mention = ""
        if not url:
            url = settings.PAGING_CHAT_WEBHOOK_URL
            mention = f"<@{message.address.lstrip('@')}> " if message.address else ""
        if not url:
            raise PermanentFailure("No chat webhook configured (PAGING_CHAT_WEBHOOK_URL) and the address is no URL.")
        payload = slack_payload(message)
        payload["text"] = mention + payload["text"]
        body = json.dumps(payload).encode()
        _post_json(url, body, {"Idempotency-Key": message.idempotency_key})


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", hex: receivers recompute it and compare in constant time."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookBackend(Backend):
    """Outgoing webhooks: `data["format"]` slack -> Slack JSON; generic -> the message as JSON, signed with
    HMAC-SHA256 in X-Portal-Signature (sha256=<hex>) over "<X-Portal-Timestamp>.<body>"."""

    def send(self, message: OutgoingMessage) -> None:
        if message.data.get("format") == "slack":
            body = json.dumps(slack_payload(message)).encode()
            _post_json(message.address, body, {"Idempotency-Key": message.idempotency_key})
            return
        document = {
            "event": message.data.get("event", "page"),
            "idempotency_key": message.idempotency_key,
            "subject": message.subject,
            "text": message.text,
            **{k: v for k, v in message.data.items() if k not in ("format", "secret")},
        }
        body = json.dumps(document, sort_keys=True, default=str).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Idempotency-Key": message.idempotency_key,
            "X-Portal-Timestamp": timestamp,
            "X-Portal-Signature": "sha256=" + sign(message.data.get("secret", ""), timestamp, body),
        }
        _post_json(message.address, body, headers)


@cache
def _backend(path: str) -> Backend:
    return import_string(path)()


def backend_for(channel: str) -> Backend:
    path = settings.PAGING_CHANNEL_BACKENDS.get(channel)
    if not path:
        raise PermanentFailure(f"No backend for channel {channel!r}.")
    return _backend(path)


def send(message: OutgoingMessage) -> Handed | None:
    return backend_for(message.channel).send(message)


def logging_channels() -> list[str]:
    """Channels whose configured backend only writes a log line (reaches nobody)."""
    found = []
    for channel in settings.PAGING_CHANNEL_BACKENDS:
        try:
            backend = backend_for(channel)
        except (ImportError, DeliveryError):
            continue
        if getattr(backend, "delivers_nothing", False):
            found.append(channel)
    return found

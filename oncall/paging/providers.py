"""Backends for outside providers: SMS and voice through Twilio (the official `twilio` SDK), push and every other
device through Apprise (the `apprise` package).

Twilio is configured by TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER (TWILIO_API_BASE_URL points the
SDK elsewhere, e.g. a test server on loopback). A message or call that Twilio accepts is recorded with its SID and
the receipt "queued"; Twilio's signed status callbacks (oncall.paging.inbound) move it on to delivered, failed or
no answer. Apprise gives no receipts: its sends are "handed to provider", never "delivered".
"""

from __future__ import annotations

import logging
from functools import cache
from urllib.parse import urlsplit, urlunsplit

import apprise
import requests
from django.conf import settings
from django.urls import reverse
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from .channels import Backend, Handed, OutgoingMessage, PermanentFailure, TemporaryFailure

logger = logging.getLogger("oncall.paging.providers")

TWILIO_API = "https://api.twilio.com"


class _BaseUrlHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, with its requests sent to TWILIO_API_BASE_URL instead of api.twilio.com."""

    def __init__(self, base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.base = urlsplit(base_url.rstrip("/"))

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        if parts.hostname and parts.hostname.endswith("twilio.com"):
            url = urlunsplit((self.base.scheme, self.base.netloc, self.base.path + parts.path, parts.query, ""))
        return super().request(method, url, *args, **kwargs)


@cache
def _client(sid: str, token: str, base_url: str) -> Client:
    timeout = float(settings.PAGING_WEBHOOK_TIMEOUT)
    http_client = (
        _BaseUrlHttpClient(base_url, timeout=timeout, max_retries=0)
        if base_url
        else TwilioHttpClient(timeout=timeout, max_retries=0)
    )
    return Client(sid, token, http_client=http_client)


def twilio_configured() -> bool:
    return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and settings.TWILIO_FROM_NUMBER)


def twilio_client() -> Client:
    if not twilio_configured():
        raise PermanentFailure(
            "Twilio is not configured (set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER)."
        )
    return _client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_API_BASE_URL)


def status_callback_url() -> str:
    return settings.SITE_URL + reverse("paging:twilio_status")


def gather_url(notification_id: int) -> str:
    return settings.SITE_URL + reverse("paging:twilio_gather", kwargs={"pk": notification_id})


def _twilio_call(create):
    """Run one SDK request and sort its failures: 429 and 5xx (and no connection) are worth retrying, any other
    refusal (400 invalid number, 401 bad credentials, 404) is not."""
    try:
        return create()
    except TwilioRestException as error:
        detail = f"Twilio answered {error.status}" + (f" (error {error.code})" if error.code else "")
        detail += f": {error.msg}"
        if error.status == 429 or error.status >= 500:
            raise TemporaryFailure(detail) from error
        raise PermanentFailure(detail) from error
    except (requests.RequestException, TwilioException, OSError) as error:
        raise TemporaryFailure(f"Twilio unreachable: {error}") from error


class TwilioSmsBackend(Backend):
    """SMS through Twilio's Messages API, with a status callback for delivery receipts."""

    def send(self, message: OutgoingMessage) -> Handed:
        if not message.address:
            raise PermanentFailure("No phone number.")
        client = twilio_client()
        sent = _twilio_call(
            lambda: client.messages.create(
                to=message.address,
                from_=settings.TWILIO_FROM_NUMBER,
                body=message.text[:1500],
                **({} if message.data.get("test") else {"status_callback": status_callback_url()}),
            )
        )
        return Handed(receipt="queued", provider_id=sent.sid or "")


def voice_twiml(message: OutgoingMessage) -> str:
    """What the call says: the page, then "press 1 to acknowledge, 2 to escalate" (Gather posts the digit back)."""
    response = VoiceResponse()
    spoken = message.data.get("spoken") or message.subject
    notification_id = message.data.get("notification_id")
    if notification_id:
        gather = response.gather(num_digits=1, action=gather_url(notification_id), method="POST", timeout=10)
        gather.say(f"This is the incident portal. {spoken}. Press 1 to acknowledge. Press 2 to escalate now.")
        response.say("No key was pressed. Goodbye.")
    else:
        response.say(f"This is the incident portal. {spoken}.")
    return str(response)


class TwilioVoiceBackend(Backend):
    """A phone call through Twilio's Calls API that reads the page and gathers one digit."""

    def send(self, message: OutgoingMessage) -> Handed:
        if not message.address:
            raise PermanentFailure("No phone number.")
        client = twilio_client()
        call = _twilio_call(
            lambda: client.calls.create(
                to=message.address,
                from_=settings.TWILIO_FROM_NUMBER,
                twiml=voice_twiml(message),
                timeout=30,
                **(
                    {}
                    if message.data.get("test")
                    else {
                        "status_callback": status_callback_url(),
                        "status_callback_event": ["initiated", "ringing", "answered", "completed"],
                    }
                ),
            )
        )
        return Handed(receipt="queued", provider_id=call.sid or "")


class AppriseBackend(Backend):
    """Push and every other device (ntfy, Pushover, Telegram, Teams, Discord, Matrix, Signal, Google Chat ...): the
    contact method's address is an Apprise URL. Apprise says only whether the service took the message."""

    def send(self, message: OutgoingMessage) -> Handed:
        if not message.address:
            raise PermanentFailure("No Apprise URL.")
        notifier = apprise.Apprise()
        if not notifier.add(message.address):
            raise PermanentFailure("Apprise cannot use this URL; check the contact method.")
        body = message.text
        ack_url = message.data.get("ack_url")
        if ack_url and ack_url not in body:
            body += f"\nAcknowledge: {ack_url}"
        try:
            accepted = notifier.notify(title=message.subject[:250], body=body)
        except Exception as error:  # noqa: BLE001 - a plugin's own exception: the service did not take it
            raise TemporaryFailure(f"Apprise could not hand the message over: {error}") from error
        if not accepted:
            scheme = message.address.split("://", 1)[0]
            raise TemporaryFailure(f"The {scheme}:// service did not accept the message.")
        return Handed(receipt="handed")

"""The Slack Web API through the official slack_sdk client, and the verification of Slack's inbound requests.

- Rate limits: slack_sdk's RateLimitErrorRetryHandler sleeps for Retry-After and retries (SLACK_RATE_LIMIT_RETRIES
  times); a 429 that outlasts those retries becomes `RateLimited`, and the outbox row waits Retry-After seconds.
- Errors are sorted into temporary (retried with backoff) and permanent (recorded on the row, not retried).
- Inbound requests are verified with slack_sdk's SignatureVerifier: HMAC-SHA256 of "v0:<timestamp>:<body>" with
  the signing secret, compared in constant time, and the timestamp within five minutes of now.
"""

from __future__ import annotations

import time

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

# ok:false errors that a later attempt can fix; everything else is permanent.
TEMPORARY_ERRORS = {
    "ratelimited",
    "fatal_error",
    "internal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
}


class ChatError(Exception):
    def __init__(self, message: str, *, temporary: bool, code: str = "", retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.code = code
        self.retry_after = retry_after


class RateLimited(ChatError):
    pass


def is_configured() -> bool:
    return bool(settings.SLACK_BOT_TOKEN)


def client() -> WebClient:
    base_url = settings.SLACK_API_BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=base_url,
        timeout=settings.SLACK_TIMEOUT,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=settings.SLACK_RATE_LIMIT_RETRIES),
        ],
    )


def call(method: str, **params) -> dict:
    """Call a Web API method; returns the response data, raises ChatError (temporary or permanent)."""
    try:
        # The typed method sends what Slack documents for it (JSON for chat.*, views.*; form fields elsewhere).
        response = getattr(client(), method.replace(".", "_"))(**params)
    except SlackApiError as error:
        response = error.response
        code = (response.data or {}).get("error", "") if isinstance(response.data, dict) else ""
        if response.status_code == 429:
            retry_after = int(response.headers.get("Retry-After", response.headers.get("retry-after", 1)) or 1)
            raise RateLimited(f"{method}: rate limited", temporary=True, code="ratelimited", retry_after=retry_after)
        temporary = response.status_code >= 500 or code in TEMPORARY_ERRORS
        raise ChatError(f"{method}: {code or response.status_code}", temporary=temporary, code=code)
    except (SlackClientError, OSError) as error:  # connection refused, timeout, DNS: Slack is unreachable
        raise ChatError(f"{method}: {type(error).__name__}: {error}", temporary=True)
    return response.data if isinstance(response.data, dict) else {}


def respond(response_url: str, body: dict) -> None:
    """Reply through a response_url (ephemeral by default), as Slack documents for commands and interactions."""
    if not response_url:
        return
    result = WebhookClient(response_url, timeout=settings.SLACK_TIMEOUT).send_dict(
        {"response_type": "ephemeral", **body}
    )
    if result.status_code >= 400:
        raise ChatError(f"response_url: HTTP {result.status_code}", temporary=result.status_code >= 500)


def verify_request(*, body: bytes, timestamp: str, signature: str) -> bool:
    secret = settings.SLACK_SIGNING_SECRET
    if not secret or not timestamp or not signature:
        return False
    try:
        int(timestamp)
    except ValueError:
        return False
    return SignatureVerifier(secret).is_valid(body=body, timestamp=timestamp, signature=signature)


def sign(body: bytes | str, *, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack would send with `body` (used by tests and the local development console)."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}

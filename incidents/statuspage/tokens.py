"""Signed links for subscribers. Nothing secret is stored: the signature (SECRET_KEY, a per-purpose salt) is
the proof, so a confirmation link cannot be turned into an unsubscribe link or the other way round."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core import signing

CONFIRM_SALT = "statuspage.subscription.confirm"
UNSUBSCRIBE_SALT = "statuspage.subscription.unsubscribe"
CONFIRM_MAX_AGE = 7 * 24 * 3600  # a confirmation link is good for a week


class InvalidToken(Exception):
    pass


def email_digest(email: str) -> str:
    """Binds a link to the address it was sent to without putting the address in the URL (signed payloads
    are only base64, and URLs end up in logs)."""
    return hashlib.sha256(email.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class ConfirmRequest:
    subscriber_id: int
    email_digest: str
    all_services: bool
    service_ids: tuple[int, ...]
    issued: str


def stamp(moment) -> str:
    """The request time a confirmation link carries; only the link matching the latest request works."""
    return moment.isoformat(timespec="microseconds")


def make_confirm_token(*, subscriber_id: int, email: str, all_services: bool, service_ids, issued_at) -> str:
    # The requested choice travels in the link, so asking again for an address already subscribed changes
    # nothing until the owner of the mailbox clicks.
    payload = {
        "s": subscriber_id,
        "e": email_digest(email),
        "a": bool(all_services),
        "v": sorted(int(pk) for pk in service_ids),
        "t": stamp(issued_at),
    }
    return signing.dumps(payload, salt=CONFIRM_SALT, compress=True)


def read_confirm_token(token: str) -> ConfirmRequest:
    try:
        payload = signing.loads(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
        return ConfirmRequest(
            subscriber_id=int(payload["s"]),
            email_digest=str(payload["e"]),
            all_services=bool(payload["a"]),
            service_ids=tuple(int(pk) for pk in payload["v"]),
            issued=str(payload["t"]),
        )
    except signing.SignatureExpired:
        raise InvalidToken("This confirmation link has expired. Subscribe again to get a new one.")
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise InvalidToken("This confirmation link is not valid. Copy the whole link from the email.")


def make_unsubscribe_token(*, subscriber_id: int, email: str) -> str:
    # No expiry: the link in a months-old email must still work (RFC 8058 one-click unsubscribe).
    return signing.dumps({"s": subscriber_id, "e": email_digest(email)}, salt=UNSUBSCRIBE_SALT)


def read_unsubscribe_token(token: str) -> tuple[int, str]:
    """(subscriber id, email digest)"""
    try:
        payload = signing.loads(token, salt=UNSUBSCRIBE_SALT)
        return int(payload["s"]), str(payload["e"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise InvalidToken("This unsubscribe link is not valid. Copy the whole link from the email.")

"""Validators for the on-call directory: E.164 phone numbers (phonenumberslite), IANA time zones and Apprise URLs."""

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from django.core.exceptions import ValidationError


def normalize_e164(value: str) -> str:
    """Return `value` as E.164 (`+15550001`), or raise ValidationError.

    Numbers must carry their country code (a leading +), because contacts live in many countries and a pager must
    never guess a region. We require a *possible* number, not a *valid* one: the guide's own hotlines
    (+1-555-0001 ...) are directory placeholders that the numbering plan does not assign, yet must be storable.
    """
    raw = (value or "").strip()
    if not raw:
        return ""
    if not raw.startswith("+"):
        raise ValidationError(
            "Enter the number in international E.164 form, starting with + and the country code (e.g. +15550001).",
            code="e164",
        )
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"{raw!r} is not a phone number: {exc}.", code="e164") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise ValidationError(f"{raw!r} is not a possible phone number for its country code.", code="e164")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def validate_e164(value: str) -> None:
    normalize_e164(value)


@lru_cache(maxsize=1)
def _timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_timezone(value: str) -> None:
    """Accept only IANA zone names (Europe/Berlin), never abbreviations like EST whose offsets are ambiguous."""
    if value not in _timezone_names():
        raise ValidationError(f"{value!r} is not an IANA time zone name (e.g. Europe/Berlin).", code="timezone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone name.", code="timezone") from exc


def validate_apprise_url(value: str) -> None:
    """An Apprise notification URL (ntfy://, pover://, tgram://, msteams://, discord://, matrix://, signal://,
    gchat://, json:// ...): Apprise itself parses it, so a URL is accepted exactly when it could be sent to."""
    # Imported when first needed: importing Apprise takes about a second (it loads every service plugin), and
    # oncall.models imports this module in every process, also those that never check an Apprise URL.
    import apprise

    raw = (value or "").strip()
    if not raw:
        raise ValidationError("Enter an Apprise URL, e.g. ntfy://ntfy.sh/my-topic.", code="apprise")
    if "://" not in raw:
        raise ValidationError(
            f"{raw!r} is not an Apprise URL: it needs a service scheme such as ntfy://, pover:// or tgram://.",
            code="apprise",
        )
    if apprise.Apprise.instantiate(raw) is None:
        scheme = raw.split("://", 1)[0]
        raise ValidationError(
            f"Apprise cannot use this URL (scheme {scheme}://): check the service name and its tokens.",
            code="apprise",
        )

"""Time zones and the one way the portal writes a moment.

Every page, form and email shows times in the reader's zone (their profile's, activated per request by
`incidents.profiles.middleware`), as "Tue 1 Dec 2026, 15:47 CET", with the UTC time on hover and in a
`<time datetime>` attribute (UTC, milliseconds at most). Templates use the `when` filters
(`{% load when %}`); Python code uses `format_moment`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError
from django.utils import dateformat, timezone

MOMENT_FORMAT = "D j M Y, H:i T"  # Tue 1 Dec 2026, 15:47 CET
DATE_FORMAT = "D j M Y"  # Tue 1 Dec 2026


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    return tuple(sorted(name for name in available_timezones() if "/" in name or name == "UTC"))


def zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def validate_zone(value: str) -> None:
    if value not in zone_names():
        raise ValidationError(f"{value!r} is not a time zone name (IANA, e.g. Europe/Berlin).")


def zone_label(tz: tzinfo | None = None, *, at: datetime | None = None) -> str:
    """'Europe/Berlin, CET' or 'UTC': how forms name the zone their times are in."""
    tz = tz or timezone.get_current_timezone()
    name = getattr(tz, "key", None) or str(tz)
    abbreviation = (at or timezone.now()).astimezone(tz).tzname()
    return name if abbreviation in (None, name) else f"{name}, {abbreviation}"


def iso_utc(value: datetime) -> str:
    """For `<time datetime>`: UTC, at most three fraction digits (HTML allows no more)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_moment(value: datetime | date | None, tz: tzinfo | None = None) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, datetime):
        return dateformat.format(value, DATE_FORMAT)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return dateformat.format(value.astimezone(tz or timezone.get_current_timezone()), MOMENT_FORMAT)


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

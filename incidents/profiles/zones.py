"""Time zones and the one way the portal writes a moment.

Every page, form and email shows times in the reader's zone (their profile's, activated per request by
`incidents.profiles.middleware`), as "Tue 1 Dec 2026, 15:47 CET", with the UTC time on hover and in a
`<time datetime>` attribute (UTC, milliseconds at most). Templates use the `when` filters
(`{% load when %}`); Python code uses `format_moment`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError
from django.utils import dateformat, timezone, translation
from django.utils.dates import MONTHS_3, WEEKDAYS_ABBR

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
    local = value.astimezone(tz or timezone.get_current_timezone())
    # MOMENT_FORMAT written out: dateformat.format parses the format on every call, and the status page shows
    # hundreds of moments (the same translated names as the "D", "M" and "T" format characters).
    weekdays, months = _names(translation.get_language())
    return (
        f"{weekdays[local.weekday()]} {local.day} {months[local.month]} {local.year}, "
        f"{local.hour:02d}:{local.minute:02d} {local.tzname() or ''}"
    ).rstrip()


@lru_cache(maxsize=16)
def _names(language: str | None) -> tuple[tuple[str, ...], dict[int, str]]:
    """Abbreviated weekday and month names in `language` (looked up once per language, not per moment)."""
    return tuple(str(WEEKDAYS_ABBR[n]) for n in range(7)), {n: str(MONTHS_3[n]).title() for n in range(1, 13)}


def format_moment_utc(value: datetime | date | None) -> str:
    """For readers without a zone of their own (the public status page, emails to many): the same format in UTC."""
    return format_moment(value, UTC)


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
# A moment written by format_moment_utc into stored text shared by many readers (timeline entries): the pages
# show it again in each reader's zone (`localise_moments`).
_UTC_MOMENT = re.compile(
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\d{1,2}) (" + "|".join(_MONTH_NAMES) + r") (\d{4}), (\d\d):(\d\d) UTC\b"
)

_TAGS = re.compile(r"(<[^>]*>)")


def localise_moments(html: str, tz: tzinfo | None = None) -> str:
    """Each UTC moment in the one format inside `html` (escaped text, e.g. a timeline entry's body_html) as a
    `<time>` in the reader's zone, the UTC time on hover."""
    if " UTC" not in html:
        return html

    def moment(match: re.Match) -> str:
        day, month, year, hour, minute = match.groups()
        try:
            value = datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), tzinfo=UTC)
        except ValueError:
            return match.group(0)
        return f'<time datetime="{iso_utc(value)}" title="{format_utc(value)}">{format_moment(value, tz)}</time>'

    # Text between tags only: a moment inside an attribute (a link's title) stays as written.
    return "".join(part if part.startswith("<") else _UTC_MOMENT.sub(moment, part) for part in _TAGS.split(html))


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

"""The one way a page shows a time (see incidents.profiles.zones).

- `{{ moment|when }}`: `<time datetime="...Z" title="2026-12-01 14:47 UTC">Tue 1 Dec 2026, 15:47 CET</time>`
- `{{ shift.start|when_both:rotation.timezone }}`: the same, then the rotation's wall time where it differs
- `{{ moment|when_in:zone_name }}`: in another zone
- `{{ moment|when_utc }}`: in UTC, for pages and emails that are the same for every reader (the public status page)
- `{{ moment|when_text }}`: plain text for emails, "Tue 1 Dec 2026, 15:47 CET (2026-12-01 14:47 UTC)"
- `{% time_zone_label %}`: "Europe/Berlin, CET", what forms say their times mean
"""

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from ..zones import format_moment, format_utc, iso_utc, zone, zone_label

register = template.Library()


def _html(value, tz=None):
    if value is None or value == "":
        return ""
    if not isinstance(value, datetime):
        return format_html('<time datetime="{}">{}</time>', value.isoformat(), format_moment(value))
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', iso_utc(value), format_utc(value), format_moment(value, tz)
    )


@register.filter
def when(value):
    return _html(value)


@register.filter
def when_in(value, zone_name):
    return _html(value, zone(zone_name))


@register.filter
def when_utc(value):
    return _html(value, UTC)


@register.filter
def when_utc_text(value):
    """Plain text in UTC, for emails to many readers (status-page subscribers)."""
    return format_moment(value, UTC)


@register.filter
def when_both(value, zone_name):
    """The reader's zone, then another zone's wall time where it differs (on-call: the rotation's)."""
    mine = _html(value)
    other = zone(zone_name)
    if not mine or other is None or format_moment(value, other) == format_moment(value):
        return mine
    return format_html('{} <span class="muted small other-zone">({})</span>', mine, format_moment(value, other))


@register.filter
def iso_utc_attr(value):
    """For a `<time datetime>` written by hand: UTC, milliseconds at most."""
    return iso_utc(value) if isinstance(value, datetime) else ""


@register.filter
def when_text(value):
    if value is None or value == "":
        return ""
    text = format_moment(value)
    if isinstance(value, datetime) and not text.endswith(" UTC"):
        text += f" ({format_utc(value)})"
    return text


@register.simple_tag
def time_zone_label():
    return zone_label()


@register.simple_tag
def now_when():
    return _html(timezone.now())

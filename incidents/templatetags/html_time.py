"""`{{ moment|datetime_attr }}`: a datetime for an HTML `datetime` attribute (or a script), in UTC with at most
three fraction digits, as the HTML standard's valid global date and time string allows ("2026-12-01T15:47:03.120Z").
Django's `date:'c'` gives Python's isoformat, with microseconds, which HTML checkers reject. A template builtin
(settings.TEMPLATES), so every template has it without a `{% load %}`."""

from datetime import UTC, datetime

from django import template

register = template.Library()


def datetime_attr_value(value) -> str:
    if not isinstance(value, datetime):
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z") if value.tzinfo is not None else text


@register.filter
def datetime_attr(value) -> str:
    return datetime_attr_value(value)

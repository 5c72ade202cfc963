"""`{{ moment|datetime_attr }}`: a datetime for an HTML `datetime` attribute (or a script), in the template's
current time zone (as `date:'c'` is) with at most three fraction digits, as the HTML standard's valid global date
and time string allows ("2026-12-01T15:47:03.120Z", "2026-01-19T09:00:00-05:00").
Django's `date:'c'` gives Python's isoformat, with microseconds, which HTML checkers reject. A template builtin
(settings.TEMPLATES), so every template has it without a `{% load %}`."""

from datetime import datetime

from django import template

register = template.Library()


def datetime_attr_value(value) -> str:
    """The moment in its own offset (UTC written "Z"), milliseconds at most."""
    if not isinstance(value, datetime):
        return ""
    text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@register.filter(expects_localtime=True)
def datetime_attr(value) -> str:
    return datetime_attr_value(value)

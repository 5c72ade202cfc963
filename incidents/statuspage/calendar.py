"""Scheduled maintenance as an iCalendar feed, so users can see windows in their own calendar."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from icalendar import Calendar, Event

from . import selectors


def maintenance_calendar() -> bytes:
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    calendar = Calendar()
    calendar.add("prodid", "-//Incident Portal//Status page maintenance//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Scheduled maintenance")
    for window in selectors.public_maintenance():
        event = Event()
        event.add("uid", f"maintenance-{window.pk}@{host}")
        event.add("dtstamp", window.updated_at)
        event.add("last-modified", window.updated_at)
        event.add("dtstart", window.starts_at)
        event.add("dtend", window.ends_at)
        event.add("summary", f"Maintenance: {window.title}")
        services = ", ".join(service.name for service in window.public_services)
        event.add("description", f"{window.description}\n\nAffected services: {services}".strip())
        event.add("url", f"{settings.SITE_URL}/status/#maintenance-{window.pk}")
        calendar.add_component(event)
    return calendar.to_ical()

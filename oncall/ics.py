"""ICS (RFC 5545) calendar feeds of on-call shifts, built with the icalendar library.

Times are written in UTC (DTSTART/DTEND with a Z suffix), which every calendar app imports without a VTIMEZONE
and shows in the viewer's own zone. Each shift keeps a stable UID across refreshes so subscribed calendars update
events in place. Gaps are left out: a calendar event for "nobody" helps nobody's calendar.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event

from .resolver import Shift

PRODID = "-//Incident Portal//On-call//EN"


def shift_summary(shift: Shift) -> str:
    who = str(shift.person) if shift.person is not None else "Nobody"
    cover = " (override)" if shift.is_override else ""
    return f"{shift.slot_label} on-call: {who}{cover} · {shift.rotation.team}"


def build_calendar(name: str, shifts: Iterable[Shift], *, stamp: datetime | None = None) -> bytes:
    """A VCALENDAR with one VEVENT per (non-gap) shift."""
    stamp = (stamp or timezone.now()).astimezone(UTC)
    host = urlsplit(settings.SITE_URL).hostname or "incident-portal"
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    calendar.add("x-published-ttl", "PT1H")
    for shift in shifts:
        if shift.is_gap:
            continue
        event = Event()
        event.add("uid", f"{shift.uid}@{host}")
        event.add("dtstamp", stamp)
        event.add("dtstart", shift.start.astimezone(UTC))
        event.add("dtend", shift.end.astimezone(UTC))
        event.add("summary", shift_summary(shift))
        lines = [f"Rotation: {shift.rotation}", f"Slot: {shift.slot_label}"]
        if shift.is_override and shift.override.reason:
            lines.append(f"Override: {shift.override.reason}")
        event.add("description", "\n".join(lines))
        event.add("categories", ["On-call"])
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    return calendar.to_ical()

"""Daily rollups of the public page's history: each past day with something to report is rendered once and kept
in HistoryRollup with a key summarising what the day shows. A render reads the keys in one aggregate query and the
rendered days in one more; only a day whose key changed (a new update, a status or restriction change, a renamed
service, maintenance that ended) is rendered again. Nothing can make a day stale without changing its key, so
there is nothing to invalidate by hand.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from django.db.models import Count, Exists, Max, Min, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from . import selectors
from .models import HistoryRollup

# Part of every key: bump it when the history templates change, so rendered days are redone after a deploy.
FORMAT = "4"
TEMPLATE = "statuspage/partials/history_day.html"


def _utc_day(moment: datetime) -> date:
    return timezone.localtime(moment, UTC).date()


def _history_incidents(*, since: datetime, exclude_ids) -> list[dict]:
    """Per unrestricted incident first published on or after `since`: the values that change what its history
    entry shows. One aggregate query."""
    published = selectors.published_updates()
    earlier = published.filter(incident_id=OuterRef("incident_id"), posted_at__lt=since)
    rows = (
        published.filter(posted_at__gte=since)
        .exclude(Exists(earlier))
        .values("incident_id", "incident__updated_at", "incident__status")
        .annotate(first=Min("posted_at"), last_id=Max("id"), count=Count("id"))
    )
    return [row for row in rows if row["incident_id"] not in exclude_ids]


def _day_keys(incident_rows, windows, services) -> dict[date, str]:
    names = "|".join(f"{service.pk}:{service.name}" for service in services)
    parts: dict[date, list[str]] = defaultdict(list)
    for row in incident_rows:
        parts[_utc_day(row["first"])].append(
            f"i{row['incident_id']}:{row['incident__updated_at'].isoformat()}:{row['incident__status']}:"
            f"{row['last_id']}:{row['count']}"
        )
    for window in windows:
        listed = ",".join(str(service.pk) for service in window.public_services)
        parts[_utc_day(window.starts_at)].append(
            f"m{window.pk}:{window.title}:{window.updated_at.isoformat()}:{window.ends_at.isoformat()}:{listed}"
        )
    return {
        day: hashlib.sha256("\n".join([FORMAT, names, *sorted(items)]).encode()).hexdigest()
        for day, items in parts.items()
    }


def _render_days(days: set[date], incident_rows, windows) -> dict[date, str]:
    """Render the given days from the database: two queries for their incidents' updates."""
    wanted = [row["incident_id"] for row in incident_rows if _utc_day(row["first"]) in days]
    incidents = selectors.public_incidents_from(selectors.public_incident_updates(wanted)) if wanted else []
    by_day: dict[date, dict] = {day: {"incidents": [], "maintenance": []} for day in days}
    for item in sorted(incidents, key=lambda item: item.first_posted_at, reverse=True):
        by_day[_utc_day(item.first_posted_at)]["incidents"].append(item)
    for window in windows:
        day = _utc_day(window.starts_at)
        if day in by_day:
            by_day[day]["maintenance"].append(window)
    return {day: render_to_string(TEMPLATE, {"day": day, **content}) for day, content in by_day.items()}


def history(page: selectors.StatusPage) -> list[selectors.HistoryDay]:
    """The days of the last `page.history_days` with incidents (not active ones) or finished maintenance, newest
    first. Two queries when nothing changed; a changed day costs two more and an upsert."""
    since = page.now - timedelta(days=page.history_days)
    first_day = _utc_day(page.now) - timedelta(days=page.history_days - 1)
    exclude_ids = {item.incident.pk for item in page.active_incidents}
    incident_rows = [
        row for row in _history_incidents(since=since, exclude_ids=exclude_ids) if _utc_day(row["first"]) >= first_day
    ]
    windows = [window for window in page.past_maintenance if _utc_day(window.starts_at) >= first_day]
    keys = _day_keys(incident_rows, windows, page.public_services)
    stored = {
        day: (key, html)
        for day, key, html in HistoryRollup.objects.filter(day__in=list(keys)).values_list("day", "key", "html")
    }
    stale = {day for day, key in keys.items() if day not in stored or stored[day][0] != key}
    html = {day: stored[day][1] for day in keys if day not in stale}
    if stale:
        fresh = _render_days(stale, incident_rows, windows)
        now = timezone.now()
        HistoryRollup.objects.bulk_create(
            [HistoryRollup(day=day, key=keys[day], html=fresh[day], computed_at=now) for day in sorted(stale)],
            update_conflicts=True,
            unique_fields=["day"],
            update_fields=["key", "html", "computed_at"],
        )
        html.update(fresh)
    # Rendered by our own template with autoescaping, as the page itself would be.
    return [selectors.HistoryDay(day, mark_safe(html[day])) for day in sorted(html, reverse=True)]  # noqa: S308

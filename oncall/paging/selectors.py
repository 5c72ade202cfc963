"""Reads for the paging panel, "my pages", the header item and the admin; each in a fixed number of queries.
Every read of incidents goes through Incident.objects.visible_to(user)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, IntegerField, Prefetch, Value, When

from incidents.models import Incident
from oncall.models import Person

from .models import Notification, Page


@dataclass
class PagingState:
    """What the incident page shows: the newest page, who it reached and what happens next."""

    page: Page | None
    notifications: list[Notification]
    earlier_pages: int

    @property
    def recipients(self) -> list[dict]:
        """One line per recipient of the newest page: level, channels, latest status."""
        by_recipient: dict[tuple, dict] = {}
        for row in self.notifications:
            key = (row.level, row.repeat, row.recipient)
            entry = by_recipient.setdefault(
                key, {"recipient": row.recipient, "level": row.level, "repeat": row.repeat, "rows": []}
            )
            entry["rows"].append(row)
        return sorted(by_recipient.values(), key=lambda e: (e["repeat"], e["level"] or 0, e["recipient"]))


def paging_state(*, incident: Incident) -> PagingState:
    """Two queries: the incident's pages (newest first, with who acknowledged) and the newest page's
    notifications."""
    pages = list(
        Page.objects.filter(incident=incident)
        .select_related("acknowledged_by", "acknowledged_by_person", "policy", "team")
        .order_by("-started_at", "-pk")[:20]
    )
    page = pages[0] if pages else None
    rows = []
    if page is not None:
        rows = list(
            Notification.objects.filter(page=page)
            .exclude(status=Notification.Status.STANDBY)
            .order_by("repeat", "level", "recipient", "method_position", "pk")[:200]
        )
    return PagingState(page=page, notifications=rows, earlier_pages=max(len(pages) - 1, 0))


def person_for(user) -> Person | None:
    if user is None or not user.is_authenticated:
        return None
    return Person.objects.filter(user=user).first()


def my_pages(*, user, limit: int = 50) -> list[Page]:
    """Pages that notified the user's contact entry, open ones first (three queries)."""
    mine = Notification.objects.filter(person__user=user).exclude(status=Notification.Status.STANDBY)
    return list(
        Page.objects.filter(incident__in=Incident.objects.visible_to(user), notifications__person__user=user)
        .distinct()
        .select_related("incident__severity", "acknowledged_by", "acknowledged_by_person", "policy")
        .prefetch_related(
            Prefetch("notifications", queryset=mine.order_by("created_at", "pk"), to_attr="my_notifications")
        )
        .annotate(
            is_closed=Case(
                When(state__in=Page.OPEN_STATES, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by("is_closed", "-started_at", "-pk")[:limit]
    )


def my_open_page_count(*, user) -> int:
    """For the header: open pages that reached the user (one query)."""
    if user is None or not user.is_authenticated:
        return 0
    return (
        Page.objects.open()
        .filter(incident__in=Incident.objects.visible_to(user), notifications__person__user=user)
        .values("pk")
        .distinct()
        .count()
    )

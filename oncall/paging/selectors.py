"""Reads for the paging panel, "my pages", the header item and the admin; each in a fixed number of queries.
Every read of incidents goes through Incident.objects.visible_to(user)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Case, IntegerField, Prefetch, Q, Value, When

from incidents.models import Incident
from oncall.models import ContactMethod, Hotline, Person

from . import channels
from .models import Channel, Notification, Page


@dataclass
class PagingState:
    """What the incident page shows: the newest page, who it reached and what happens next."""

    page: Page | None
    notifications: list[Notification]
    earlier_pages: int
    # The newest page was acknowledged by the incident's own (first) acknowledgement: one acknowledgement, shown
    # once (the incident's line says who, when and through which channel).
    acknowledged_with_incident: bool = False
    # Added responders' pages (another team, one person), oldest first, each with its notifications as `.rows`.
    added: list[Page] = field(default_factory=list)

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
    """Two queries: the incident's pages (newest first, with who acknowledged) and the notifications of its
    newest own page and of its added responders' pages."""
    pages = list(
        Page.objects.filter(incident=incident)
        .select_related("acknowledged_by", "acknowledged_by_person", "policy", "team", "target_person", "requested_by")
        .order_by("-started_at", "-pk")[:50]
    )
    own = [p for p in pages if not p.is_added]
    added = sorted((p for p in pages if p.is_added), key=lambda p: (p.started_at, p.pk))
    page = own[0] if own else None
    rows = []
    wanted = [p.pk for p in added] + ([page.pk] if page is not None else [])
    by_page: dict[int, list[Notification]] = {pk: [] for pk in wanted}
    if wanted:
        for row in (
            Notification.objects.filter(page_id__in=wanted)
            .exclude(status=Notification.Status.STANDBY)
            .order_by("repeat", "level", "recipient", "method_position", "pk")[:400]
        ):
            by_page[row.page_id].append(row)
    if page is not None:
        rows = by_page[page.pk]
    for each in added:
        each.rows = by_page[each.pk]
    together = bool(
        page is not None
        and page.state == Page.State.ACKNOWLEDGED
        and page.acknowledged_at is not None
        and incident.acknowledged_at is not None
        and abs((page.acknowledged_at - incident.acknowledged_at).total_seconds()) < 5
    )
    return PagingState(
        page=page,
        notifications=rows,
        earlier_pages=max(len(own) - 1, 0),
        acknowledged_with_incident=together,
        added=added,
    )


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


def unreachable_channels() -> list[str]:
    """Channels that contact methods or hotlines in the directory use but whose backend only writes a log line
    (e.g. SMS and voice without Twilio configured): pages sent that way reach nobody. One query."""
    logging_only = set(channels.logging_channels())
    if not logging_only:
        return []
    methods = (
        ContactMethod.objects.filter(is_active=True, channel__in=logging_only)
        .order_by()
        .values_list("channel", flat=True)
        .distinct()
    )
    if Channel.VOICE in logging_only:
        # Hotlines are called on their number (or their person's): one UNION, one query.
        hotlines = (
            Hotline.objects.filter(Q(phone__gt="") | Q(person__phone__gt=""))
            .order_by()
            .annotate(used_channel=Value(Channel.VOICE.value))
            .values_list("used_channel", flat=True)
        )
        methods = methods.union(hotlines)
    used = set(methods)
    return sorted(used)


def channel_warning() -> str:
    """The warning the paging admin, the on-call page and `check --deploy` show, or ""."""
    names = [Channel(channel).label for channel in unreachable_channels()]
    if not names:
        return ""
    return (
        f"{' and '.join(names)} pages are only written to the log and reach nobody: the directory uses "
        "them but no provider is configured (set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER)."
    )

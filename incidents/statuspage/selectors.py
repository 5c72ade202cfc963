"""Reads for the public status page, the Atom feed and the alert rules. Everything here is public data:
public services, unrestricted incidents and external updates that were explicitly published.

Anonymous visitors get nothing from Incident.objects.visible_to(); the status page is the one deliberate
public read, so the restriction rule is written here once (`public_incidents`, `published_updates`) and every
public page, feed and email goes through these two.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from django.db import connection
from django.db.models import Prefetch, Q
from django.utils import timezone

from incidents.models import ACTIVE_STATUSES, Incident, Service, StatusUpdate, UpdateKind, UpdateStatus

from .models import ComponentState, MaintenanceWindow, ServiceState, ServiceStatusOverride, Subscriber

HISTORY_DAYS = 90
FEED_SIZE = 50


def public_services():
    return Service.objects.filter(is_public=True)


def public_incidents():
    """Incidents that may be mentioned publicly: never a restricted (security, data breach) one."""
    return Incident.objects.filter(is_restricted=False)


def published_updates():
    """External updates a Communications Lead published, on unrestricted incidents. Internal updates and
    drafts never leave the portal."""
    return StatusUpdate.objects.filter(kind=UpdateKind.EXTERNAL, is_published=True, incident__is_restricted=False)


def _public_services_prefetch(lookup: str, to_attr: str) -> Prefetch:
    return Prefetch(lookup, queryset=public_services().order_by("name"), to_attr=to_attr)


def is_under_maintenance(service, at: datetime | None = None) -> bool:
    """True while a scheduled maintenance window covering `service` (instance or pk) runs at `at` (default now).
    Alert rules ask this before declaring an incident automatically. One indexed query."""
    at = at or timezone.now()
    service_id = getattr(service, "pk", service)
    return MaintenanceWindow.objects.in_progress(at).filter(services__id=service_id).exists()


def services_under_maintenance(service_ids, at: datetime | None = None) -> set[int]:
    """The subset of `service_ids` under maintenance at `at`, in one query (for alerts naming several services)."""
    at = at or timezone.now()
    return set(
        MaintenanceWindow.objects.in_progress(at)
        .filter(services__id__in=list(service_ids))
        .values_list("services__id", flat=True)
    )


def public_maintenance(*, now: datetime | None = None) -> list[MaintenanceWindow]:
    """Windows of the last 90 days and to come that touch a public service, with those services. Two queries."""
    since = (now or timezone.now()) - timedelta(days=HISTORY_DAYS)
    return [
        window
        for window in MaintenanceWindow.objects.filter(ends_at__gte=since)
        .prefetch_related(_public_services_prefetch("services", "public_services"))
        .order_by("starts_at", "id")
        if window.public_services
    ]


def maintenance_for_staff(*, now: datetime | None = None) -> tuple[list, list]:
    """(in progress, upcoming) windows with all their services, internal ones included. Two queries."""
    now = now or timezone.now()
    windows = list(
        MaintenanceWindow.objects.filter(ends_at__gt=now)
        .prefetch_related(Prefetch("services", queryset=Service.objects.order_by("name"), to_attr="all_services"))
        .order_by("starts_at", "id")
    )
    return [w for w in windows if w.starts_at <= now], [w for w in windows if w.starts_at > now]


# --- The status page -----------------------------------------------------------------------------------------


def _public_component_states() -> Prefetch:
    return Prefetch(
        "component_states",
        queryset=ComponentState.objects.filter(service__is_public=True)
        .select_related("service")
        .only("update", "state", "service__name", "service__slug", "service__is_public")
        .order_by("service__name"),
        to_attr="public_component_states",
    )


def _worst(states) -> ServiceState | None:
    return max(states, key=lambda state: state.rank, default=None)


@dataclass
class PublicIncident:
    """An incident as the public sees it: the title of its latest published update (never its internal title),
    and the component states that update set (never anything derived from internal data). An incident that is
    resolved (or closed) inside the portal reads as resolved, even if nobody published a "Resolved" update."""

    incident: Incident
    updates: list[StatusUpdate]  # newest first, each with public_component_states

    @property
    def anchor(self) -> str:
        return f"incident-{self.incident.number}"

    @property
    def latest(self) -> StatusUpdate:
        return self.updates[0]

    @property
    def title(self) -> str:
        return self.latest.title or "Service disruption"

    @property
    def first_posted_at(self) -> datetime:
        return self.updates[-1].posted_at

    @property
    def component_states(self) -> list[ComponentState]:
        return self.latest.public_component_states

    @cached_property
    def state(self) -> ServiceState | None:
        """The worst state its latest update gives a public service (None when it names none)."""
        return _worst(component.service_state for component in self.component_states)

    @property
    def affected(self) -> list[Service]:
        return [component.service for component in self.component_states]

    @property
    def is_resolved(self) -> bool:
        return self.latest.status == UpdateStatus.RESOLVED or not self.incident.is_active

    @property
    def resolved_without_update(self) -> bool:
        """Resolved in the portal but the last published word is not "Resolved": the page says so itself."""
        return self.is_resolved and self.latest.status != UpdateStatus.RESOLVED

    @property
    def resolved_at(self) -> datetime | None:
        if self.latest.status == UpdateStatus.RESOLVED:
            return self.latest.posted_at
        return self.incident.resolved_at or self.incident.closed_at

    @property
    def status_value(self) -> str:
        return UpdateStatus.RESOLVED.value if self.is_resolved else self.latest.status

    @property
    def status_label(self) -> str:
        return UpdateStatus(self.status_value).label


@dataclass
class ServiceRow:
    service: Service
    state: ServiceState
    cause: str  # "override", "incident", "maintenance" or "" when operational
    message: str = ""


@dataclass
class HistoryDay:
    """A past day with something to report (days without incidents or maintenance are not listed)."""

    day: date
    html: str  # rendered once per change of the day (HistoryRollup)


@dataclass
class StatusPage:
    now: datetime
    services: list[ServiceRow]
    overall: ServiceState
    active_incidents: list[PublicIncident]
    maintenance_in_progress: list[MaintenanceWindow]
    maintenance_upcoming: list[MaintenanceWindow]
    past_maintenance: list[MaintenanceWindow]
    public_services: list[Service]
    history_days: int = HISTORY_DAYS


def derive_service_state(
    *, override: ServiceStatusOverride | None, incident_states: list[ServiceState], under_maintenance: bool
) -> tuple[ServiceState, str]:
    """A manual override wins; otherwise the worst state the active incidents' latest published updates give the
    service; otherwise maintenance; otherwise operational. An incident during maintenance is real news, so it
    wins (unless its update says the service is operational)."""
    if override is not None:
        return ServiceState(override.state), "override"
    worst = _worst(incident_states)
    if worst is not None and worst != ServiceState.OPERATIONAL:
        return worst, "incident"
    if under_maintenance:
        return ServiceState.UNDER_MAINTENANCE, "maintenance"
    return ServiceState.OPERATIONAL, ""


def public_incidents_from(updates) -> list[PublicIncident]:
    by_incident: dict[int, list[StatusUpdate]] = OrderedDict()
    for update in updates:  # newest first
        by_incident.setdefault(update.incident_id, []).append(update)
    return [PublicIncident(incident_updates[0].incident, incident_updates) for incident_updates in by_incident.values()]


# What the public page shows of an update and of its incident (PublicIncident and the update partial): loading
# only these keeps a cold render of the page cheap (the incident row is wide, and it comes with every update).
PUBLIC_UPDATE_FIELDS = (
    "incident",
    "kind",
    "status",
    "title",
    "description",
    "workaround",
    "next_update_at",
    "posted_at",
    "is_published",
    "incident__number",
    "incident__status",
    "incident__resolved_at",
    "incident__closed_at",
    "incident__is_restricted",
)


def public_incident_updates(incident_ids=None):
    """Published updates (newest first) with their incident and public component states: two queries."""
    updates = (
        published_updates()
        .select_related("incident")
        .only(*PUBLIC_UPDATE_FIELDS)
        .prefetch_related(_public_component_states())
    )
    if incident_ids is not None:
        updates = updates.filter(incident_id__in=incident_ids)  # a list or a subquery
    return updates.order_by("-posted_at", "-id")


def status_page(*, now: datetime | None = None) -> StatusPage:
    """The current state of the public page in five queries, whatever the number of services, incidents or
    updates. Its history (past days) comes from `rollups.history(page)`."""
    now = now or timezone.now()
    services = list(public_services().select_related("status_override").order_by("name"))  # 1
    # 2, 3: an active incident is on the page only through what was published about it. Chosen by a subquery on
    # incidents: a join filtering updates on their incident's status is planned badly without table statistics.
    active_ids = public_incidents().filter(status__in=ACTIVE_STATUSES).values("pk")
    ongoing = public_incidents_from(public_incident_updates(active_ids))
    active_public = [item for item in ongoing if not item.is_resolved]
    active_public.sort(key=lambda item: (-(item.state.rank if item.state else -1), -item.first_posted_at.timestamp()))
    # 4, 5; maintenance of internal services only is not announced (it still suppresses alerts)
    windows = public_maintenance(now=now)

    incident_states: dict[int, list[ServiceState]] = {}
    for item in active_public:
        for component in item.component_states:
            incident_states.setdefault(component.service_id, []).append(component.service_state)

    in_progress = [window for window in windows if window.starts_at <= now < window.ends_at]
    upcoming = [window for window in windows if window.starts_at > now]
    maintained = {service.pk for window in in_progress for service in window.public_services}

    rows = []
    for service in services:
        override = getattr(service, "status_override", None)
        state, cause = derive_service_state(
            override=override,
            incident_states=incident_states.get(service.pk, []),
            under_maintenance=service.pk in maintained,
        )
        rows.append(ServiceRow(service, state, cause, override.message if override else ""))
    overall = max((row.state for row in rows), key=lambda state: state.rank, default=ServiceState.OPERATIONAL)

    return StatusPage(
        now=now,
        services=rows,
        overall=overall,
        active_incidents=active_public,
        maintenance_in_progress=in_progress,
        maintenance_upcoming=upcoming,
        past_maintenance=[window for window in windows if window.ends_at <= now],
        public_services=services,
    )


# --- Conditional GET -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    etag: str
    last_modified: datetime  # for HTTP: includes the daily move of the 90-day window
    changed_at: datetime | None  # for people: the latest change to what the page reports


def _as_datetime(value) -> datetime | None:
    # PostgreSQL returns datetimes; SQLite (the no-setup default) returns text for aggregates over them.
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def status_page_fingerprint(*, now: datetime | None = None) -> Fingerprint:
    """One query summarising every change the status page shows: unrestricted incidents and their services,
    published updates, overrides, maintenance windows and public services, plus the time-driven changes (a
    maintenance window starting or ending, the 90-day window moving at midnight UTC). Restricted incidents are
    left out, so not even the ETag moves when a security incident changes."""
    now = now or timezone.now()
    q = connection.ops.quote_name
    incidents = q(Incident._meta.db_table)
    updates = q(StatusUpdate._meta.db_table)
    incident_services = q(Incident.services.through._meta.db_table)
    update_services = q(StatusUpdate.affected_services.through._meta.db_table)
    overrides = q(ServiceStatusOverride._meta.db_table)
    windows = q(MaintenanceWindow._meta.db_table)
    window_services = q(MaintenanceWindow.services.through._meta.db_table)
    services = q(Service._meta.db_table)
    # Services have no updated_at: their names, in order, stand in for one (a rename must show at once).
    names = {"postgresql": "md5(string_agg(name, '|' ORDER BY id))"}.get(connection.vendor, "group_concat(name, '|')")
    published = f"""{updates} u JOIN {incidents} i ON i.id = u.incident_id
        WHERE u.kind = %(external)s AND u.is_published = %(yes)s AND i.is_restricted = %(no)s"""
    # Only quoted table names from the models' metadata are interpolated; every value is a parameter.
    sql = f"""
        SELECT
          (SELECT MAX(updated_at) FROM {incidents} WHERE is_restricted = %(no)s),
          (SELECT MAX(u.posted_at) FROM {published}),
          (SELECT MAX(updated_at) FROM {overrides}),
          (SELECT MAX(updated_at) FROM {windows}),
          (SELECT MAX(starts_at) FROM {windows} WHERE starts_at <= %(now)s),
          (SELECT MAX(ends_at) FROM {windows} WHERE ends_at <= %(now)s),
          (SELECT COUNT(*) FROM {incidents} WHERE is_restricted = %(no)s),
          (SELECT COUNT(*) FROM {incident_services} s JOIN {incidents} i ON i.id = s.incident_id
            WHERE i.is_restricted = %(no)s),
          (SELECT COUNT(*) FROM {published}),
          (SELECT SUM(u.id) FROM {published}),
          (SELECT COUNT(*) FROM {update_services} a WHERE a.statusupdate_id IN (SELECT u.id FROM {published})),
          (SELECT COUNT(*) FROM {overrides}),
          (SELECT COUNT(*) FROM {windows}),
          (SELECT COUNT(*) FROM {window_services}),
          (SELECT COUNT(*) FROM {services} WHERE is_public = %(yes)s),
          (SELECT SUM(id) FROM {services} WHERE is_public = %(yes)s),
          (SELECT {names} FROM {services} WHERE is_public = %(yes)s)
    """  # noqa: S608
    params = {"external": UpdateKind.EXTERNAL.value, "yes": True, "no": False, "now": now}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    midnight = timezone.localtime(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    moments = [moment for moment in map(_as_datetime, row[:6]) if moment is not None]
    last_modified = max([*moments, midnight])
    parts = [str(value) for value in row] + [midnight.date().isoformat()]
    etag = hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
    return Fingerprint(etag=etag, last_modified=last_modified, changed_at=max(moments, default=None))


# --- Feed and subscribers ------------------------------------------------------------------------------------


def feed_updates(limit: int = FEED_SIZE) -> list[StatusUpdate]:
    return list(
        published_updates()
        .select_related("incident")
        .prefetch_related(_public_services_prefetch("affected_services", "public_affected_services"))
        .order_by("-posted_at", "-id")[:limit]
    )


def subscribers_for_update(update: StatusUpdate):
    """Confirmed, still-subscribed addresses that want this update: everyone on "all services", plus those who
    chose one of the public services it affects (the update's own list, else the incident's services)."""
    affected = list(update.affected_services.filter(is_public=True).values_list("pk", flat=True))
    if not affected:
        affected = list(update.incident.services.filter(is_public=True).values_list("pk", flat=True))
    wanted = Q(all_services=True)
    if affected:
        wanted |= Q(services__in=affected)
    return Subscriber.objects.filter(confirmed_at__isnull=False, unsubscribed_at__isnull=True).filter(wanted).distinct()


# --- An incident's public face, for its responders -----------------------------------------------------------


def latest_published_update(incident: Incident) -> StatusUpdate | None:
    """The incident's latest published status-page update with its public component states (two queries)."""
    return (
        StatusUpdate.objects.filter(incident=incident, kind=UpdateKind.EXTERNAL, is_published=True)
        .prefetch_related(_public_component_states())
        .order_by("-posted_at", "-id")
        .first()
    )


def needs_public_resolution(incident: Incident, latest: StatusUpdate | None) -> bool:
    """Resolved or closed in the portal while the status page's last word is not "Resolved" (and it is public)."""
    return (
        latest is not None
        and not incident.is_active
        and not incident.is_restricted
        and latest.status != UpdateStatus.RESOLVED
    )

"""Reads for pages and the API, each in a fixed number of queries."""

from datetime import timedelta
from functools import cached_property

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q
from django.urls import reverse

from . import access
from .access import ADMIN, INCIDENT_MANAGER, RESPONDER, SECURITY
from .models import (
    ACTIVE_STATUSES,
    ChecklistItem,
    ChecklistPhase,
    EntryKind,
    EventType,
    FiveWhys,
    Incident,
    IncidentRunbook,
    Role,
    RoleAssignment,
    Runbook,
    Status,
    StatusUpdate,
    TimelineEntry,
    event_types_of_kind,
)
from .statuspage import selectors as statuspage_selectors

CHECKLIST_PHASES = [p for p in ChecklistPhase if p != ChecklistPhase.RUNBOOK]
CURRENT_ROLES = Prefetch(
    "role_assignments",
    queryset=RoleAssignment.objects.filter(relieved_at__isnull=True).select_related("holder"),
    to_attr="current_roles",
)


def current_holder(incident: Incident, role: str):
    """Who holds `role` on the incident now (None if nobody)."""
    assignment = incident.role_assignments.filter(role=role, relieved_at__isnull=True).select_related("holder").first()
    return assignment.holder if assignment else None


def access_incident(*, reference: str, user, lock: bool = False) -> Incident:
    """Fetch an incident by INC reference, only if `user` may see it (Incident.DoesNotExist otherwise, so
    callers answer 404 and a restricted incident's existence does not leak)."""
    number = parse_reference(reference)
    if number is None:
        raise Incident.DoesNotExist(reference)
    queryset = Incident.objects.visible_to(user).select_related("severity")
    if lock:
        queryset = queryset.select_for_update()
    return queryset.get(number=number)


def parse_reference(reference: str) -> int | None:
    text = (reference or "").strip().upper()
    if text.startswith("INC-"):
        text = text[4:]
    return int(text) if text.isdigit() and len(text) < 10 else None


def incident_for_page(*, reference: str, user) -> Incident:
    number = parse_reference(reference)
    if number is None:
        raise Incident.DoesNotExist(reference)
    return (
        Incident.objects.visible_to(user)
        .select_related("severity", "created_by", "acknowledged_by")
        .prefetch_related(CURRENT_ROLES, "services")
        .get(number=number)
    )


def active_incidents(*, user):
    return (
        Incident.objects.visible_to(user)
        .filter(status__in=ACTIVE_STATUSES)
        .select_related("severity")
        .prefetch_related(CURRENT_ROLES, "services")
        .order_by("severity__rank", "-declared_at")
    )


def timeline_after(*, incident: Incident, after_id: int = 0, limit: int = 200):
    """New entries since a cursor (the last id the viewer has): one indexed query."""
    return list(
        TimelineEntry.objects.filter(incident=incident, id__gt=after_id).select_related("author").order_by("id")[:limit]
    )


# --- Pages of the responder dashboard --------------------------------------------------------------------

TIMELINE_PAGE_SIZE = 200
RECENTLY_RESOLVED_DAYS = 7
DASHBOARD_ACTIVE_LIMIT = 300
LIST_PAGE_SIZE = 50


def timeline_filter_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """The timeline's "Show" menu: per coarse kind, "all of them" (when there are several) and each event type."""
    groups = []
    for kind, label in EntryKind.choices:
        types = event_types_of_kind(kind)
        options = [(kind, f"All: {label.lower()}")] if len(types) > 1 else []
        options += [(value, EventType(value).label) for value in types if len(types) == 1 or value != kind]
        groups.append((label, options))
    return groups


def timeline_filter(show: str) -> str:
    """A valid "Show" value (a coarse kind or an event type), else "" (everything)."""
    return show if show in EntryKind.values or show in EventType.values else ""


def _shown(entries, show: str):
    if show in EntryKind.values:
        return entries.filter(event_type__in=event_types_of_kind(show))
    if show in EventType.values:
        return entries.filter(event_type=show)
    return entries


def visible_timeline_after(*, reference: str, user, after_id: int, kind: str = "", limit: int = TIMELINE_PAGE_SIZE):
    """The live-timeline poll: new entries of a visible incident since the viewer's cursor, in ONE query
    (visibility, reference lookup and cursor in a single statement walking timeline_cursor_idx), so an
    unchanged timeline costs one indexed query. An invisible or unknown incident simply has no entries."""
    number = parse_reference(reference)
    if number is None:
        return []
    visible = Incident.objects.visible_to(user).filter(number=number).values("pk")
    entries = _shown(TimelineEntry.objects.filter(incident__in=visible, id__gt=after_id), kind)
    return list(entries.select_related("author").order_by("-id")[:limit])


def timeline_page(*, incident: Incident, before_id: int | None = None, kind: str = "", limit: int = TIMELINE_PAGE_SIZE):
    """The latest `limit` entries (by id, i.e. by when they were written) older than `before_id`, plus whether
    older ones exist. One query: it fetches limit + 1 rows to know if there is more."""
    entries = TimelineEntry.objects.filter(incident=incident)
    if before_id:
        entries = entries.filter(id__lt=before_id)
    entries = _shown(entries, kind)
    rows = list(entries.select_related("author").order_by("-id")[: limit + 1])
    has_older = len(rows) > limit
    return rows[:limit], has_older


def dashboard_incidents(*, user, now):
    """Active incidents (most severe first) and the recently resolved ones: two queries plus the prefetch of
    current roles; the "needs an update" list is derived from the active list in Python."""
    active = list(
        Incident.objects.visible_to(user)
        .filter(status__in=ACTIVE_STATUSES)
        .select_related("severity", "acknowledged_by")
        .prefetch_related(CURRENT_ROLES)
        .order_by("severity__rank", "-declared_at")[:DASHBOARD_ACTIVE_LIMIT]
    )
    since = now - timedelta(days=RECENTLY_RESOLVED_DAYS)
    resolved = list(
        Incident.objects.visible_to(user)
        .filter(resolved_at__gte=since, status__in=[Status.RESOLVED, Status.CLOSED])
        .select_related("severity")
        .order_by("-resolved_at")[:10]
    )
    return active, resolved


def incident_list(
    *, user, filters: dict, cursor: tuple | None = None, direction: str = "older", limit: int = LIST_PAGE_SIZE
):
    """One page of the incident list, newest first, by keyset on (declared_at, number): the cost of a page does
    not depend on how deep it is, and no COUNT(*) runs. Returns (rows, has_more) in display order."""
    queryset = Incident.objects.visible_to(user).select_related("severity")
    if filters.get("severity"):
        queryset = queryset.filter(severity__level__in=filters["severity"])
    if filters.get("status"):
        queryset = queryset.filter(status__in=filters["status"])
    if filters.get("service"):
        queryset = queryset.filter(services=filters["service"])
    if filters.get("declared_from"):
        queryset = queryset.filter(declared_at__gte=filters["declared_from"])
    if filters.get("declared_to"):
        queryset = queryset.filter(declared_at__lt=filters["declared_to"])
    text = (filters.get("q") or "").strip()
    if text:
        number = parse_reference(text)
        match = Q(title__icontains=text) | Q(summary__icontains=text)
        if number is not None:
            match |= Q(number=number)
        queryset = queryset.filter(match)
    if cursor is not None:
        declared_at, number = cursor
        older = Q(declared_at__lt=declared_at) | Q(declared_at=declared_at, number__lt=number)
        newer = Q(declared_at__gt=declared_at) | Q(declared_at=declared_at, number__gt=number)
        queryset = queryset.filter(older if direction == "older" else newer)
    if direction == "newer" and cursor is not None:
        rows = list(queryset.order_by("declared_at", "number").prefetch_related("services")[: limit + 1])
        has_more = len(rows) > limit
        return list(reversed(rows[:limit])), has_more
    rows = list(queryset.order_by("-declared_at", "-number").prefetch_related("services")[: limit + 1])
    return rows[:limit], len(rows) > limit


def runbooks():
    return Runbook.objects.select_related("suggested_severity").prefetch_related("steps")


def runbook_for_page(*, slug: str) -> Runbook:
    return Runbook.objects.select_related("suggested_severity").prefetch_related("steps").get(slug=slug)


def checklist_items(*, incident: Incident):
    return list(ChecklistItem.objects.filter(incident=incident).select_related("checked_by", "runbook"))


def attached_runbooks(*, incident: Incident):
    return list(IncidentRunbook.objects.filter(incident=incident).select_related("runbook").order_by("attached_at"))


def recent_updates(*, incident: Incident, limit: int = 10):
    return list(
        StatusUpdate.objects.filter(incident=incident)
        .select_related("posted_by")
        .prefetch_related("affected_services")
        .order_by("-posted_at", "-id")[:limit]
    )


def five_whys_of(*, incident: Incident):
    return FiveWhys.objects.filter(incident=incident).first()


def responders_to_choose():
    """People who can hold a role: active users in a group that may respond (or superusers)."""
    users = get_user_model().objects.filter(is_active=True)
    return (
        users.filter(Q(is_superuser=True) | Q(groups__name__in=[RESPONDER, INCIDENT_MANAGER, ADMIN, SECURITY]))
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


# --- who may do what on an incident (asked by the services and the incident page) ---------------------


def _current_holder_ids(incident: Incident, roles, current_roles=None) -> set[int]:
    """Holders of these roles now; from prefetched assignments (the incident page's current_roles) when given."""
    if current_roles is None:
        current_roles = incident.role_assignments.filter(relieved_at__isnull=True, role__in=list(roles))
    return {assignment.holder_id for assignment in current_roles if assignment.role in roles}


def may_backdate(user, incident: Incident, *, current_roles=None) -> bool:
    """Back-dating timeline entries is for the Scribe, the Incident Commander and managers."""
    if user is None:
        return True
    if not access.can_respond(user):
        return False
    if access.is_manager(user):
        return True
    return user.pk in _current_holder_ids(incident, (Role.SCRIBE, Role.INCIDENT_COMMANDER), current_roles)


def may_edit_details(user, incident: Incident, *, current_roles=None) -> bool:
    """An incident's details (title, summary, impact, services, detection) are edited by its Incident
    Commander and by managers."""
    if user is None:
        return True
    if not access.can_respond(user):
        return False
    if access.is_manager(user):
        return True
    return user.pk in _current_holder_ids(incident, (Role.INCIDENT_COMMANDER,), current_roles)


def may_lift_restriction(user) -> bool:
    """Making a restricted incident visible to everyone is for the security team and admins: they own what
    restricted incidents hold. Restricting (narrowing who sees it) needs only the right to edit details."""
    return user is None or access.is_security(user) or access.is_admin(user)


# --- the incident page ------------------------------------------------------------------------------------


class IncidentPage:
    """Everything the incident page shows to `user`, computed lazily so a partial costs only the queries it renders."""

    def __init__(self, user, incident: Incident, *, kind: str = "", before_id: int | None = None):
        self.user = user
        self.incident = incident
        self.kind = timeline_filter(kind)
        self.before_id = before_id
        self.can_respond = access.can_respond(user)
        self.is_manager = access.is_manager(user)

    @cached_property
    def _timeline(self):
        return timeline_page(incident=self.incident, before_id=self.before_id, kind=self.kind)

    @cached_property
    def timeline(self):
        # Shown newest first by when it happened, so a back-dated entry sits where it belongs.
        entries, _ = self._timeline
        return sorted(entries, key=lambda e: (e.occurred_at, e.id), reverse=True)

    @property
    def has_older(self) -> bool:
        return self._timeline[1]

    @property
    def oldest_id(self) -> int | None:
        entries = self._timeline[0]
        return min(e.id for e in entries) if entries else None

    @property
    def newest_id(self) -> int:
        entries = self._timeline[0]
        return max((e.id for e in entries), default=0)

    @cached_property
    def _checklist(self):
        return checklist_items(incident=self.incident)

    @cached_property
    def checklist_phases(self):
        items = self._checklist
        phases = []
        for phase in CHECKLIST_PHASES:
            phase_items = [i for i in items if i.phase == phase]
            if phase_items:
                done = sum(1 for i in phase_items if i.is_checked)
                phases.append({"phase": phase, "items": phase_items, "done": done, "total": len(phase_items)})
        return phases

    @cached_property
    def runbook_sections(self):
        items = [i for i in self._checklist if i.phase == ChecklistPhase.RUNBOOK]
        return [
            {"runbook": link.runbook, "items": [i for i in items if i.runbook_id == link.runbook_id]}
            for link in self.attached_runbooks
        ]

    @cached_property
    def attached_runbooks(self):
        return attached_runbooks(incident=self.incident)

    @cached_property
    def five_whys(self):
        return five_whys_of(incident=self.incident)

    @cached_property
    def updates(self):
        return recent_updates(incident=self.incident)

    @cached_property
    def can_edit_details(self) -> bool:
        return self.can_respond and may_edit_details(
            self.user, self.incident, current_roles=self.incident.current_roles
        )

    @cached_property
    def public_services(self):
        return list(statuspage_selectors.public_services().order_by("name"))

    @cached_property
    def latest_published(self):
        return statuspage_selectors.latest_published_update(self.incident)

    @cached_property
    def current_component_states(self) -> dict[int, str]:
        latest = self.latest_published
        return {c.service_id: c.state for c in latest.public_component_states} if latest else {}

    @cached_property
    def needs_public_resolution(self) -> bool:
        return statuspage_selectors.needs_public_resolution(self.incident, self.latest_published)

    @cached_property
    def communications_lead(self):
        return next((a.holder for a in self.incident.current_roles if a.role == Role.COMMUNICATIONS_LEAD), None)

    @cached_property
    def can_backdate(self) -> bool:
        # The rule add_timeline_entry applies, asked with the roles the page already loaded.
        return may_backdate(self.user, self.incident, current_roles=self.incident.current_roles)

    @cached_property
    def urls(self) -> dict[str, str]:
        """Each action's URL, reversed once per page rather than twice per form (and per checklist item)."""
        ref = {"reference": self.incident.reference}
        names = [
            "acknowledge",
            "change_status",
            "change_severity",
            "assign_role",
            "attach_runbook",
            "record_five_whys",
            "post_internal_update",
            "post_external_update",
            "publish_resolution",
            "edit_details",
            "add_note",
            "preview_note",
        ]
        urls = {name: reverse(f"incidents:{name}", kwargs=ref) for name in names}
        # tick_checklist_item is <detail>/checklist/<id>/; the template appends the id.
        urls["checklist"] = reverse("incidents:tick_checklist_item", kwargs={**ref, "item_id": 0})[:-2]
        return urls

    @cached_property
    def is_acknowledged(self) -> bool:
        return self.incident.acknowledged_at is not None

    def timeline_url(self, **params) -> str:
        query = {"kind": self.kind, **params}
        parts = "&".join(f"{k}={v}" for k, v in query.items() if v not in ("", None))
        return f"{self.incident.get_absolute_url()}?{parts}" if parts else self.incident.get_absolute_url()

    @property
    def poll_url(self) -> str:
        return self.timeline_url(after=self.newest_id)

    @property
    def older_url(self) -> str:
        return self.timeline_url(before=self.oldest_id)

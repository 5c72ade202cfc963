"""The paging lifecycle of an incident: paging starts when it is declared (or its severity changes), stops when it
is acknowledged, resolved or closed. Called by the incident lifecycle's subscribers, inside the transaction that
holds the incident row."""

from __future__ import annotations

from django.utils import timezone

from incidents import timeline
from incidents.models import Incident
from incidents.timeline import paging as paging_timeline
from oncall import selectors as oncall_selectors
from oncall.models import Person

from .. import sentmarks
from ..models import Notification, Page
from .engine import EscalationWrites, advance_page
from .recipients import EscalationContext


def paged_team_and_policy(incident: Incident):
    """The owning team of the incident's first affected service that has one (by name), and its escalation
    policy, else the default policy."""
    team = None
    for service in incident.services.select_related("owning_team").order_by("name"):
        if service.owning_team_id:
            team = service.owning_team
            break
    return team, oncall_selectors.escalation_policy_for(team)


def start_paging(*, incident: Incident, by, reason: str = "declared") -> Page | None:
    """Start paging for the incident's current severity through the owning team's escalation policy (the default
    policy when no team owns its services). An open page of the incident is stopped first (superseded).
    Call inside the transaction that holds the incident row (declare_incident, change_severity)."""
    now = timezone.now()
    superseded = stop_paging(
        incident=incident, by=by, reason=f"superseded: paging restarted ({reason})", quiet=True, only_primary=True
    )
    team, policy = paged_team_and_policy(incident)
    if policy is None:
        timeline.record(paging_timeline.paging_unavailable(incident))
        return None
    page = Page.objects.create(
        incident=incident,
        severity=incident.severity,
        policy=policy,
        team=team,
        started_at=now,
        pass_started_at=now,
        escalate_at=now,
    )
    timeline.record(
        paging_timeline.paging_started(
            incident, page=page, team=team, policy=policy, superseded=bool(superseded), reason=reason
        )
    )
    writes = EscalationWrites()
    advance_page(page, EscalationContext(now), writes)
    writes.flush()
    return page


def _close_pages(
    incident: Incident, *, state: str, by=None, person=None, via="", reason="", only_primary=False
) -> list[Page]:
    pages = Page.objects.select_for_update().filter(incident=incident, state__in=Page.OPEN_STATES)
    if only_primary:
        pages = pages.filter(is_added=False)
    pages = list(pages)
    if not pages:
        return []
    now = timezone.now()
    for page in pages:
        page.state = state
        page.escalate_at = None
        if state == Page.State.ACKNOWLEDGED:
            page.acknowledged_at = now
            page.acknowledged_by = by
            page.acknowledged_by_person = person
            page.acknowledged_via = via
        else:
            page.stopped_at = now
            page.stop_reason = reason[:200]
        page.save()
    # Rows a sender holds right now are skipped here: that sender re-reads the page after this commits and
    # cancels its own row (or finished sending before this transaction could take the incident lock).
    waiting = list(
        Notification.objects.select_for_update(skip_locked=True)
        .filter(
            page__in=pages,
            status__in=[Notification.Status.PENDING, Notification.Status.STANDBY],
        )
        .values_list("pk", flat=True)
    )
    # Rows sent by a sender whose worker died before its batch committed are recorded as sent, not cancelled.
    sent = set(sentmarks.restore(waiting))
    waiting = [pk for pk in waiting if pk not in sent]
    if waiting:
        Notification.objects.filter(pk__in=waiting).update(status=Notification.Status.CANCELLED, scheduled_for=None)
    return pages


def acknowledge_pages(*, incident: Incident, by, person: Person | None = None, via: str = "portal") -> list[Page]:
    """Stop escalation: every open page of the incident becomes acknowledged and its waiting notifications are
    cancelled. Call with the incident row locked (incidents.services.status.acknowledge_incident does)."""
    if person is None and by is not None:
        person = Person.objects.filter(user=by).first()
    pages = _close_pages(incident, state=Page.State.ACKNOWLEDGED, by=by, person=person, via=via)
    if incident.acknowledged_at is None and incident.status != "closed":
        # The incident's first acknowledgement follows in the same transaction (acknowledge_incident) and is the
        # one timeline entry; the page keeps who, when and through which channel.
        return pages
    for page in pages:
        who = person or by
        name = str(who) if who is not None else "the portal"
        if by is not None and person is None:
            name = by.get_full_name() or by.get_username()
        timeline.record(
            paging_timeline.page_acknowledged(incident, page=page, name=name, via=via, by=by, person=person)
        )
    return pages


def stop_paging(*, incident: Incident, by, reason: str, quiet: bool = False, only_primary: bool = False) -> list[Page]:
    """Stop every open page of the incident (resolved, closed), or only its own paging run (superseded by a new
    page: added responders go on being paged)."""
    pages = _close_pages(incident, state=Page.State.STOPPED, reason=reason, only_primary=only_primary)
    if pages and not quiet:
        timeline.record(paging_timeline.paging_stopped(incident, reason=reason, pages=pages, by=by))
    return pages

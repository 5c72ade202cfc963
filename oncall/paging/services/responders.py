"""Adding responders: paging another team through its escalation policy, or one person by their notification
rules, with a message."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents import access
from incidents.errors import DomainError, PermissionDenied
from incidents.models import Incident
from incidents.timeline import paging as paging_timeline
from oncall import selectors as oncall_selectors
from oncall.models import Person, Team

from ..models import Notification, Page
from .engine import EscalationWrites, advance_page
from .recipients import EscalationContext, person_notifications, when_sent


def add_responders(
    *, incident: Incident, by, team: Team | None = None, person: Person | None = None, message: str = ""
):
    """Page another team (through its escalation policy: level 1 now, later levels until someone acknowledges) or
    one person (by their notification rules), with a message. One open added page per team or person; the
    incident's acknowledgement (from anyone, any channel) stops these pages too. Returns the new page."""
    if not access.can_respond(by):
        raise PermissionDenied("You need the responder role to add responders.")
    if (team is None) == (person is None):
        raise DomainError("Choose a team or a person to page.", field="team")
    message = (message or "").strip()
    if len(message) > 1000:
        raise DomainError("Keep the message under 1,000 characters.", field="message")
    with transaction.atomic():
        incident = Incident.objects.select_for_update().select_related("severity").get(pk=incident.pk)
        if incident.status in ("resolved", "closed"):
            raise DomainError(f"{incident.reference} is {incident.get_status_display().lower()}.", field="incident")
        open_added = Page.objects.filter(incident=incident, is_added=True, state__in=Page.OPEN_STATES)
        now = timezone.now()
        context = EscalationContext(now)
        writes = EscalationWrites()
        if team is not None:
            if open_added.filter(team=team, target_person__isnull=True).exists():
                raise DomainError(f"{team} is being paged for this incident already.", field="team")
            policy = oncall_selectors.escalation_policy_for(team)
            if policy is None:
                raise DomainError(f"{team} has no escalation policy and there is no default policy.", field="team")
            page = Page.objects.create(
                incident=incident,
                severity=incident.severity,
                policy=policy,
                team=team,
                is_added=True,
                message=message,
                requested_by=by,
                started_at=now,
                pass_started_at=now,
                escalate_at=now,
            )
            writes.entry(
                paging_timeline.responders_paged(
                    incident, page=page, target=str(team), how=str(policy), message=message, by=by
                )
            )
            advance_page(page, context, writes)
        else:
            if open_added.filter(target_person=person).exists():
                raise DomainError(f"{person} is being paged for this incident already.", field="person")
            page = Page.objects.create(
                incident=incident,
                severity=incident.severity,
                target_person=person,
                is_added=True,
                message=message,
                requested_by=by,
                started_at=now,
                pass_started_at=now,
                escalate_at=None,
                acknowledge_due_at=now + settings.ACKNOWLEDGE_TARGET,
            )
            rows = person_notifications(
                person,
                rules=context.rules(person),
                at=now,
                key_prefix=f"page:{page.pk}:added",
                incident_id=incident.pk,
                page=page,
                purpose=Notification.Purpose.PAGE,
                message=message,
            )
            channels_ = ", ".join(when_sent(row, now) for row in rows) or "no way to reach them"
            writes.entry(
                paging_timeline.responders_paged(
                    incident, page=page, target=str(person), how=channels_, message=message, by=by
                )
            )
            writes.notifications.extend(rows)
        writes.flush()
    return page

"""Response roles (assigned, relieved; one holder per role, history kept) and the incident's responders."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .. import lifecycle, timeline
from ..errors import DomainError, InvalidTransition
from ..models import Incident, Role, RoleAssignment, Status
from .checklist import tick_facts
from .rules import ensure_responder, lock_incident, require_responder


def assign_holder(incident: Incident, *, role: str, holder, by) -> RoleAssignment:
    role = Role(role)
    current = (
        RoleAssignment.objects.select_for_update()
        .filter(incident=incident, role=role, relieved_at__isnull=True)
        .select_related("holder")
        .first()
    )
    if current and current.holder_id == holder.pk:
        raise DomainError(f"{holder} is already {role.label}.", field="holder")
    now = timezone.now()
    if current:
        current.relieved_at = now
        current.save(update_fields=["relieved_at"])
    assignment = RoleAssignment.objects.create(
        incident=incident, role=role, holder=holder, assigned_by=by, assigned_at=now
    )
    ensure_responder(incident, holder, by=by)
    timeline.record(
        timeline.role_assigned(incident, role=role, holder=holder, previous=current.holder if current else None, by=by)
    )
    if role == Role.INCIDENT_COMMANDER:
        tick_facts(incident, "ic_assigned")
    lifecycle.publish(lifecycle.RoleAssigned(incident_id=incident.pk, by=by, role=role, holder_id=holder.pk))
    return assignment


def check_role_assignment(incident: Incident, *, role: str, holder, by) -> None:
    """Raises DomainError when assign_role would refuse; writes nothing."""
    require_responder(by)
    if role not in Role.values:
        raise DomainError(f"Unknown role {role!r}.", field="role")
    if holder is None or not holder.is_active:
        raise DomainError("Choose an active user for the role.", field="holder")
    if incident.status == Status.CLOSED:
        raise InvalidTransition(f"{incident.reference} is closed.", field="role")
    if incident.role_assignments.filter(role=role, relieved_at__isnull=True, holder=holder).exists():
        raise DomainError(f"{holder} is already {Role(role).label}.", field="holder")


@transaction.atomic
def assign_role(*, incident: Incident, role: str, holder, by) -> RoleAssignment:
    """Give a role to someone (claiming it when holder is the actor). One holder per role; history kept."""
    incident = lock_incident(incident)
    check_role_assignment(incident, role=role, holder=holder, by=by)
    return assign_holder(incident, role=role, holder=holder, by=by)


@transaction.atomic
def relieve_role(*, incident: Incident, role: str, by) -> None:
    require_responder(by)
    incident = lock_incident(incident)
    current = (
        RoleAssignment.objects.select_for_update()
        .filter(incident=incident, role=role, relieved_at__isnull=True)
        .first()
    )
    if current is None:
        raise DomainError(f"Nobody holds {Role(role).label}.", field="role")
    current.relieved_at = timezone.now()
    current.save(update_fields=["relieved_at"])
    timeline.record(timeline.role_relieved(incident, role=Role(role), holder=current.holder, by=by))


@transaction.atomic
def add_responder(*, incident: Incident, user, by) -> bool:
    require_responder(by)
    incident = lock_incident(incident)
    created = ensure_responder(incident, user, by=by)
    if created:
        timeline.record(timeline.responder_added(incident, user=user, by=by))
    return created

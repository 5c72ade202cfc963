"""Who may read the audit trail and export evidence. Written once; pages, admin and commands ask these."""

from incidents import access
from incidents.models import Role


def can_view_audit(user) -> bool:
    return access.is_admin(user) or access.is_security(user)


def can_export_evidence(user, incident) -> bool:
    """The security team, admins and the incident's current Incident Commander. The caller has already
    fetched the incident through visible_to(user), so restricted incidents stay hidden from everyone else."""
    if access.is_security(user) or access.is_admin(user):
        return True
    if not access.can_view(user):
        return False
    return incident.role_assignments.filter(
        role=Role.INCIDENT_COMMANDER, relieved_at__isnull=True, holder_id=user.pk
    ).exists()

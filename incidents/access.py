"""Who may do what, written once. Pages, API, admin and services all ask these functions.

Groups (seeded by a migration): viewer (read only), responder (acts on incidents), incident_manager
(administers on-call data, overrides closure, publishes post-mortems), admin, and security (sees restricted incidents).
"""

from django.conf import settings

VIEWER = "viewer"
RESPONDER = "responder"
INCIDENT_MANAGER = "incident_manager"
ADMIN = "admin"
SECURITY = settings.SECURITY_GROUP_NAME
ALL_GROUPS = (VIEWER, RESPONDER, INCIDENT_MANAGER, ADMIN, SECURITY)


def group_names(user) -> frozenset[str]:
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_portal_group_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._portal_group_names = cached
    return cached


def can_view(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_admin(user) -> bool:
    return can_view(user) and (user.is_superuser or ADMIN in group_names(user))


def is_manager(user) -> bool:
    return can_view(user) and (is_admin(user) or INCIDENT_MANAGER in group_names(user))


def is_security(user) -> bool:
    return can_view(user) and (user.is_superuser or SECURITY in group_names(user))


def can_respond(user) -> bool:
    """Act on incidents: declare, acknowledge, change status, post updates, tick checklists."""
    return can_view(user) and (is_manager(user) or bool({RESPONDER, SECURITY} & group_names(user)))

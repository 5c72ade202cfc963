"""Django model permissions for the portal's groups, so the admin shows each group what it may use.

The portal's own rules live in incidents.access; these permissions only open the Django admin's pages. They are
granted by a post_migrate receiver (wired in IncidentsConfig.ready) rather than a data migration, because every
area adds models over time and each new model's permissions must reach the groups without another migration.
The receiver runs once per migrated app, only adds what is missing, and costs a few queries.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS

from . import access

# The portal's apps (labels). Managers administer all of them through the admin.
PORTAL_APPS = ("incidents", "alerting", "statuspage", "audit", "oncall", "paging", "postmortems")

# What each group gets per app label: a set of actions (add/change/delete/view).
VIEW = frozenset({"view"})
MANAGE = frozenset({"add", "change", "view"})
GROUP_ACTIONS: dict[str, dict[str, frozenset[str]]] = {
    access.VIEWER: {"incidents": VIEW},
    access.RESPONDER: {label: VIEW for label in PORTAL_APPS},
    access.SECURITY: {label: VIEW for label in PORTAL_APPS},
    # The audit trail is append-only: managers read it, nobody edits it through the admin.
    access.INCIDENT_MANAGER: {label: (VIEW if label == "audit" else MANAGE) for label in PORTAL_APPS},
}

# Deleting is allowed only where nothing historical depends on the row: configuration that is copied at use
# (checklist templates, runbook steps) and on-call directory data. Incidents, timelines, updates, pages, alerts,
# post-mortems and the audit trail are history and are never deleted by a manager.
MANAGER_DELETABLE = {
    "incidents": {"checklisttemplateitem", "runbookstep"},
    "oncall": None,  # None: every model of the app (people, teams, rotations, overrides, escalation policies)
}


def _wanted(group_name: str, app_label: str, codename: str, model: str) -> bool:
    if group_name == access.ADMIN:
        return True
    action = codename.split("_", 1)[0]
    if action in GROUP_ACTIONS.get(group_name, {}).get(app_label, ()):
        return True
    if group_name == access.INCIDENT_MANAGER and action == "delete" and app_label in MANAGER_DELETABLE:
        models = MANAGER_DELETABLE[app_label]
        return models is None or model in models
    return False


def grant_group_permissions(sender=None, *, app_config=None, using=DEFAULT_DB_ALIAS, apps=None, **kwargs) -> None:
    """post_migrate receiver: give the portal's groups the model permissions of the app just migrated.

    auth's own receiver (create_permissions) runs first for the same app, since auth is earlier in
    INSTALLED_APPS, so the app's permissions exist by the time this runs. The admin group gets every
    permission of every app (including auth's, to manage users)."""
    app_config = app_config or sender
    if apps is None:
        apps = global_apps
    try:
        Group = apps.get_model("auth", "Group")
        Permission = apps.get_model("auth", "Permission")
    except LookupError:
        return
    label = app_config.label
    relevant = {access.ADMIN} | {name for name, per_app in GROUP_ACTIONS.items() if label in per_app}
    if label in MANAGER_DELETABLE:
        relevant.add(access.INCIDENT_MANAGER)
    permissions = list(
        Permission.objects.using(using)
        .filter(content_type__app_label=label)
        .values_list("pk", "codename", "content_type__model")
    )
    if not permissions:
        return
    for group_name in sorted(relevant):
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        wanted = {pk for pk, codename, model in permissions if _wanted(group_name, label, codename, model)}
        if wanted:
            # add() skips rows that already exist, so re-running migrate changes nothing.
            group.permissions.add(*wanted)

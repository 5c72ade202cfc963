from django.apps import AppConfig
from django.db.models.signals import post_migrate


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at the top: AppConfig modules load before the models permissions uses.
        from . import lifecycle, live
        from .permissions import grant_group_permissions

        # Connected for every app (no sender), so models that other areas add later reach the groups too.
        post_migrate.connect(grant_group_permissions, dispatch_uid="incidents.grant_group_permissions")
        # Live pages: every timeline entry, once committed, is announced to the pages showing its incident.
        lifecycle.subscribe(lifecycle.TimelineRecorded, live.timeline_recorded)

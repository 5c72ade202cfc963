from django.apps import AppConfig
from django.core import checks


class PagingConfig(AppConfig):
    name = "oncall.paging"
    label = "paging"
    verbose_name = "Paging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from incidents import lifecycle

        from . import subscriptions
        from .checks import paging_channels_reach_someone

        checks.register(paging_channels_reach_someone, checks.Tags.compatibility, deploy=True)
        lifecycle.subscribe(lifecycle.IncidentMerged, subscriptions.move_pages_of_merged_incident, in_transaction=True)

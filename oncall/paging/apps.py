from django.apps import AppConfig
from django.core import checks


class PagingConfig(AppConfig):
    name = "oncall.paging"
    label = "paging"
    verbose_name = "Paging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at the top: AppConfig modules load before the models these modules use.
        from . import subscribers
        from .checks import paging_channels_reach_someone

        checks.register(paging_channels_reach_someone, checks.Tags.compatibility, deploy=True)
        subscribers.subscribe()

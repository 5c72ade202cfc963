from django.apps import AppConfig


class PagingConfig(AppConfig):
    name = "oncall.paging"
    label = "paging"
    verbose_name = "Paging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at the top: AppConfig modules load before the models, and the handlers use them.
        from . import subscribers

        subscribers.subscribe()

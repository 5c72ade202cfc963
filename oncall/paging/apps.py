from django.apps import AppConfig


class PagingConfig(AppConfig):
    name = "oncall.paging"
    label = "paging"
    verbose_name = "Paging"
    default_auto_field = "django.db.models.BigAutoField"

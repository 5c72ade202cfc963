from django.apps import AppConfig


class AlertingConfig(AppConfig):
    name = "incidents.alerting"
    label = "alerting"
    verbose_name = "Alerts and integrations"
    default_auto_field = "django.db.models.BigAutoField"

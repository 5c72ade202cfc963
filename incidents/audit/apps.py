from django.apps import AppConfig, apps


class AuditConfig(AppConfig):
    name = "incidents.audit"
    label = "audit"
    verbose_name = "Audit trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Every model is registered by now, including ones other areas add later: all of them get receivers.
        from .signals import connect_receivers

        connect_receivers(apps.get_models(include_auto_created=False))

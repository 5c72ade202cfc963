from django.apps import AppConfig


class WatchConfig(AppConfig):
    name = "incidents.watch"
    label = "watch"
    verbose_name = "Triage probes and certificate watch"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from incidents import lifecycle

        from . import subscriptions

        # Triage runs after the declaration commits, in a worker: a probe that hangs never delays declaring.
        lifecycle.subscribe(lifecycle.IncidentDeclared, subscriptions.triage_after_declaration)

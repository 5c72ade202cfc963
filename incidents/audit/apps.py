from django.apps import AppConfig, apps


class AuditConfig(AppConfig):
    name = "incidents.audit"
    label = "audit"
    verbose_name = "Audit trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Every model is registered by now, including ones other areas add later: all of them get receivers.
        # (Imported here, not at the top: AppConfig modules load before the models these modules use.)
        from celery.signals import task_postrun, task_prerun

        from .context import task_finished, task_started
        from .signals import connect_receivers

        connect_receivers(apps.get_models(include_auto_created=False))
        # Tasks: the task's name and id stand in for the request in the records they write.
        task_prerun.connect(task_started, dispatch_uid="audit.task_started", weak=False)
        task_postrun.connect(task_finished, dispatch_uid="audit.task_finished", weak=False)

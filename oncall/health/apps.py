from django.apps import AppConfig


class HealthConfig(AppConfig):
    """The portal watches itself: timer heartbeats, /healthz, /metrics, the dead-man's switch."""

    name = "oncall.health"
    label = "health"
    verbose_name = "Health"

    def ready(self):
        from celery.signals import task_postrun

        from . import heartbeats

        task_postrun.connect(heartbeats.on_task_postrun, weak=False, dispatch_uid="health-heartbeat")

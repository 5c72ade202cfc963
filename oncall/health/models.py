from django.db import models


class Heartbeat(models.Model):
    """When each periodic tick (a Celery beat entry) last finished successfully, written by the worker that ran
    it. /healthz compares its age with the tick's interval. One more row, `deadman-switch-ping`, holds when the
    dead-man's switch was last claimed for a ping (oncall.health.deadman.claim_ping)."""

    name = models.CharField(max_length=100, unique=True)
    last_beat_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} at {self.last_beat_at:%Y-%m-%d %H:%M:%S}"

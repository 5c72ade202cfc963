"""The Celery app. Beat only wakes things up: every deadline lives in a database column, and each tick
claims due rows with SELECT ... FOR UPDATE SKIP LOCKED, so a lost message delays nothing beyond the next tick."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")

app = Celery("incidentportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def register_ticks(sender, **kwargs):
    # Apps declare their periodic ticks in a module-level BEAT_TICKS list in their tasks module:
    # [("name", "dotted.task.path"), ...]; each runs every TIMER_TICK_SECONDS.
    from importlib import import_module

    from django.conf import settings

    for package in (
        "incidents",
        "incidents.alerting",
        "incidents.statuspage",
        "incidents.audit",
        "oncall",
        "oncall.paging",
        "oncall.chatops",
        "postmortems",
    ):
        try:
            module = import_module(f"{package}.tasks")
        except ModuleNotFoundError as error:
            if error.name != f"{package}.tasks":
                raise  # a broken import inside tasks.py must not silently drop its ticks
            continue
        for name, task_path, *every in getattr(module, "BEAT_TICKS", []):
            seconds = every[0] if every else settings.TIMER_TICK_SECONDS
            sender.conf.beat_schedule[name] = {
                "task": task_path,
                "schedule": seconds,
                "options": {"expires": seconds * 5},
            }

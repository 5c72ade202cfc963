"""The Celery app. Beat only wakes things up: every deadline lives in a database column, and each tick
claims due rows with SELECT ... FOR UPDATE SKIP LOCKED, so a lost message delays nothing beyond the next tick."""

import os
from importlib import import_module

from celery import Celery
from django.apps import apps as django_apps
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")

app = Celery("incidentportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def registered_task(name: str):
    """The task registered under its dotted name, e.g. "postmortems.tasks.send_postmortem_report". Services enqueue
    the tasks that call them through this rather than importing the tasks module, so a dependency points one way
    (tasks -> services). Registering happens when the app is finalised (below: every app's tasks module is
    imported); an unknown name raises NotRegistered at once, in tests too."""
    return app.tasks[name]


def beat_ticks() -> list[tuple[str, str, float]]:
    """Every periodic tick as (name, dotted task path, seconds). Apps declare theirs in a module-level BEAT_TICKS
    list in their tasks module: [("name", "dotted.task.path"[, seconds]), ...]; without seconds a tick runs every
    TIMER_TICK_SECONDS. The tasks modules are the installed apps' (Django's app registry, as autodiscover_tasks
    finds them). Beat schedules these; /healthz checks that each keeps running."""
    ticks = []
    for config in django_apps.get_app_configs():
        try:
            module = import_module(f"{config.name}.tasks")
        except ModuleNotFoundError as error:
            if error.name != f"{config.name}.tasks":
                raise  # a broken import inside tasks.py must not silently drop its ticks
            continue
        for name, task_path, *every in getattr(module, "BEAT_TICKS", []):
            ticks.append((name, task_path, float(every[0]) if every else float(settings.TIMER_TICK_SECONDS)))
    return ticks


@app.on_after_finalize.connect
def register_ticks(sender, **kwargs):
    for name, task_path, seconds in beat_ticks():
        sender.conf.beat_schedule[name] = {
            "task": task_path,
            "schedule": seconds,
            "options": {"expires": seconds * 5},
        }

"""Helpers for post-mortem tests: incidents walked through their lifecycle at exact, controlled times."""

from __future__ import annotations

from datetime import datetime, timedelta

import time_machine

from incidents.models import Role
from incidents.services.roles import assign_role
from incidents.services.status import acknowledge_incident, change_status
from postmortems.models import PostMortem
from tests.factories import ResponderFactory, declare

T0 = datetime.fromisoformat("2025-01-15T14:00:00+00:00")


def resolved_incident(
    *,
    by=None,
    level="P1",
    start: datetime = T0,
    detect_after: timedelta = timedelta(minutes=3),
    ack_after: timedelta | None = timedelta(minutes=5),
    mitigate_after: timedelta = timedelta(hours=1, minutes=10),
    resolve_after: timedelta = timedelta(hours=2, minutes=15),
    technical_lead=None,
    **declare_kwargs,
):
    """Detected at `start`, declared `detect_after` later; acknowledged, mitigated (Monitoring) and resolved
    the given durations after detection. Returns the resolved incident (its post-mortem drafted)."""
    by = by or ResponderFactory()
    with time_machine.travel(start + detect_after, tick=False):
        incident = declare(by=by, level=level, detected_at=start, **declare_kwargs)
        if technical_lead is not None:
            assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=technical_lead, by=by)
    if ack_after is not None:
        with time_machine.travel(start + detect_after + ack_after, tick=False):
            acknowledge_incident(incident=incident, by=by)
    with time_machine.travel(start + mitigate_after, tick=False):
        incident = change_status(incident=incident, to="monitoring", by=by)
    with time_machine.travel(start + resolve_after, tick=False):
        incident = change_status(incident=incident, to="resolved", by=by)
    return incident


def postmortem_for(incident) -> PostMortem:
    return PostMortem.objects.select_related("incident").get(incident=incident)


def run_enqueued(callbacks) -> int:
    """Run in this process the Celery tasks a service enqueued with transaction.on_commit(partial(task.delay,
    ...)): what a worker would do with the message, without a broker. Returns how many tasks ran."""
    ran = 0
    for callback in callbacks:
        func = getattr(callback, "func", None)
        task = getattr(func, "__self__", None)
        if task is not None and getattr(func, "__name__", "") == "delay":
            task(*callback.args, **callback.keywords)
            ran += 1
        else:
            callback()
    return ran


def tick(django_capture_on_commit_callbacks):
    """One beat tick, called directly, with the sends it enqueued run as a worker would."""
    from postmortems import tasks

    with django_capture_on_commit_callbacks() as callbacks:
        counts = tasks.reminder_tick()
    run_enqueued(callbacks)
    return counts

"""Lifecycle subscriptions of the watch app (registered in WatchConfig.ready)."""

from incidents import lifecycle

from . import tasks


def triage_after_declaration(event: lifecycle.IncidentDeclared) -> None:
    # Runs after commit (the registry's default): the worker sees the committed incident and its services.
    tasks.run_triage.delay(event.incident_id)

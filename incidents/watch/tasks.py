"""Celery tasks of the watch app: thin, idempotent, they call services.

- run_triage (queue `default`): the probes of a just-declared incident (or one asked for from the page or API).
- certificate_check (queue `default`, every 5 minutes; not on `timers`, since a TLS handshake may take seconds):
  endpoints whose daily check is due.
"""

from celery import shared_task

from incidents.models import Incident

from . import services

BEAT_TICKS = [("watch-certificate-check", "incidents.watch.tasks.certificate_check", 300)]


@shared_task(acks_late=True, ignore_result=True)
def run_triage(incident_id: int):
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is not None:
        return services.run_triage(incident=incident)
    return 0


@shared_task(acks_late=True, ignore_result=True)
def certificate_check():
    return services.check_due_certificates()

"""Celery tasks of the watch app: thin, idempotent, they call services.

- run_triage (queue `default`): the probes of a just-declared incident (or one asked for from the page or API).
- certificate_tick (queue `timers`, every 5 minutes): only looks whether an endpoint's daily check is due, and if so
  wakes check_certificates (queue `default`), which does the TLS handshakes: a slow handshake never delays the
  escalation tick.
"""

from celery import shared_task
from django.contrib.auth import get_user_model

from incidents.audit.context import acting_as
from incidents.models import Incident

from . import selectors, services

BEAT_TICKS = [("watch-certificate-tick", "incidents.watch.tasks.certificate_tick", 300)]


@shared_task(acks_late=True, ignore_result=True)
def run_triage(incident_id: int, by_id: int | None = None):
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return 0
    by = get_user_model().objects.filter(pk=by_id).first() if by_id is not None else None
    with acting_as(by):  # the audit trail names who asked, like the timeline entry does
        return services.run_triage(incident=incident, by=by)


@shared_task(acks_late=True, ignore_result=True)
def certificate_tick():
    if selectors.certificates_due():
        check_certificates.delay()
        return True
    return False


@shared_task(acks_late=True, ignore_result=True)
def check_certificates():
    return services.check_due_certificates()

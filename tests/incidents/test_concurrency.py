"""INC reference numbers under concurrent declaration, against the real PostgreSQL database: threads, each
with its own connection and transactions, declare at the same moment. Numbers must be unique and increasing (they
come from a sequence, so they need not be consecutive: tests/incidents/test_numbering.py)."""

import threading

import pytest
from django.db import connection

from incidents import numbering
from incidents.errors import DomainError
from incidents.models import ChecklistItem, Incident, SeverityPolicy
from incidents.services.status import acknowledge_incident, declare_incident
from tests.factories import ResponderFactory

THREADS = 8
PER_THREAD = 5

# transaction=True: each thread commits for real. serialized_rollback=True: the flush after this test would
# otherwise also wipe the seeded guide data (severity policies, checklists, runbooks) for later tests.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def run_in_threads(count, target):
    barrier = threading.Barrier(count)
    errors = []
    results = []
    lock = threading.Lock()

    def worker(index):
        try:
            barrier.wait(timeout=30)
            value = target(index)
            with lock:
                results.append(value)
        except Exception as error:  # any failure in a thread is reported below with its index
            with lock:
                errors.append((index, repr(error)))
        finally:
            connection.close()  # each thread has its own connection; do not leak it

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not errors, errors
    return results


def test_concurrent_declarations_get_unique_increasing_numbers():
    users = [ResponderFactory() for _ in range(THREADS)]
    severity_pk = SeverityPolicy.objects.get(level="P1").pk
    start = numbering.next_number()

    def declare_several(index):
        severity = SeverityPolicy.objects.get(pk=severity_pk)
        return [
            declare_incident(title=f"Thread {index} incident {n}", severity=severity, by=users[index]).number
            for n in range(PER_THREAD)
        ]

    batches = run_in_threads(THREADS, declare_several)
    numbers = [number for batch in batches for number in batch]
    total = THREADS * PER_THREAD
    assert len(numbers) == len(set(numbers)) == total
    assert all(batch == sorted(batch) for batch in batches)  # each declarer's numbers increase
    assert min(numbers) > start
    assert numbering.next_number() > max(numbers)
    assert Incident.objects.count() == total
    # Each declaration committed whole: every incident has its checklists and its Incident Commander.
    per_incident = ChecklistItem.objects.filter(incident__in=Incident.objects.all()).count() / total
    assert per_incident == ChecklistItem.objects.filter(incident=Incident.objects.first()).count() > 0
    assert all(
        incident.role_assignments.filter(role="incident_commander").exists() for incident in Incident.objects.all()
    )


def test_a_refused_declaration_does_not_burn_a_number():
    # Validation happens before a number is taken (a rollback after it leaves a gap: test_numbering.py).
    user = ResponderFactory()
    severity = SeverityPolicy.objects.get(level="P2")
    first = declare_incident(title="First", severity=severity, by=user)
    with pytest.raises(DomainError):
        declare_incident(title="   ", severity=severity, by=user)
    second = declare_incident(title="Second", severity=severity, by=user)
    assert second.number == first.number + 1


def test_concurrent_acknowledgements_record_exactly_one():
    users = [ResponderFactory() for _ in range(THREADS)]
    incident = declare_incident(
        title="Race to acknowledge", severity=SeverityPolicy.objects.get(level="P0"), by=users[0]
    )

    def acknowledge(index):
        return acknowledge_incident(incident=Incident.objects.get(pk=incident.pk), by=users[index])

    run_in_threads(THREADS, acknowledge)
    incident.refresh_from_db()
    assert incident.acknowledged_at is not None and incident.acknowledged_by in users
    assert incident.timeline.filter(body__startswith="Acknowledged by").count() == 1

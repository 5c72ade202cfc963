"""INC numbers on PostgreSQL come from a sequence (incidents/numbering.py): a declaration never waits for another
one's transaction, numbers are unique and increasing, and a number a rolled-back declaration took stays unused."""

import threading

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from incidents import numbering
from incidents.models import Incident, ReferenceCounter, SeverityPolicy
from incidents.services.status import declare_incident
from tests.factories import IncidentFactory, ResponderFactory, declare

WAIT = 30  # seconds any thread waits for another before the test fails (a bound, not a timing claim)


class RolledBack(Exception):
    pass


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_declaration_does_not_wait_for_another_still_open():
    """A declares inside a transaction and keeps it open; B declares meanwhile and must finish before A ends.
    B runs with a lock_timeout, so if B queued behind A's transaction (the old counter row) it fails, not hangs."""
    users = [ResponderFactory(), ResponderFactory()]
    severity_pk = SeverityPolicy.objects.get(level="P0").pk
    a_declared, b_done = threading.Event(), threading.Event()
    results, errors = {}, []

    def thread_a():
        try:
            with transaction.atomic():
                incident = declare_incident(
                    title="Storm incident", severity=SeverityPolicy.objects.get(pk=severity_pk), by=users[0]
                )
                results["a"] = incident.number
                a_declared.set()
                results["b_done_while_a_open"] = b_done.wait(timeout=WAIT)
        except Exception as error:  # reported below
            errors.append(("a", repr(error)))
        finally:
            a_declared.set()
            connection.close()

    def thread_b():
        try:
            assert a_declared.wait(timeout=WAIT), "A never declared"
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '5s'")
                    cursor.execute("SET LOCAL statement_timeout = '20s'")
                incident = declare_incident(
                    title="P0 by hand", severity=SeverityPolicy.objects.get(pk=severity_pk), by=users[1]
                )
            results["b"] = incident.number
            # A's transaction is still open: its incident is not visible from here yet.
            results["a_visible_to_b"] = Incident.objects.filter(number=results["a"]).exists()
        except Exception as error:  # reported below
            errors.append(("b", repr(error)))
        finally:
            b_done.set()
            connection.close()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * WAIT + 10)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not errors, errors
    assert results["b_done_while_a_open"] is True
    assert results["a_visible_to_b"] is False
    assert results["b"] > results["a"]
    assert set(Incident.objects.values_list("number", flat=True)) == {results["a"], results["b"]}


@pytest.mark.django_db
def test_numbers_are_unique_and_increasing():
    user = ResponderFactory()
    numbers = [declare(by=user, title=f"Incident {n}").number for n in range(5)]
    numbers.append(IncidentFactory().number)
    numbers.append(declare(by=user).number)
    assert numbers == sorted(set(numbers))
    assert [incident.reference for incident in Incident.objects.order_by("number")] == [f"INC-{n}" for n in numbers]


@pytest.mark.django_db
def test_a_rolled_back_declarations_number_is_not_reused():
    user = ResponderFactory()
    first = declare(by=user, title="Kept").number
    rolled_back = None
    with pytest.raises(RolledBack), transaction.atomic():
        rolled_back = declare(by=user, title="Rolled back").number
        raise RolledBack
    assert not Incident.objects.filter(number=rolled_back).exists()
    after = declare(by=user, title="After").number
    assert first < rolled_back < after
    assert sorted(Incident.objects.values_list("number", flat=True)) == [first, after]


def migrate_incidents_to(name: str) -> None:
    # Inside the test's transaction: PostgreSQL rolls the DDL back with everything else.
    MigrationExecutor(connection).migrate([("incidents", name)])


@pytest.mark.django_db
def test_the_migration_starts_the_sequence_past_the_counter_and_every_incident():
    issued = numbering.next_number()
    migrate_incidents_to("0008_change_detected_event_type")
    # Going back hands the sequence's position to the counter row: nothing it issued is issued again.
    assert ReferenceCounter.objects.get(name="incident").value == issued

    IncidentFactory(number=issued + 40)  # written directly, past the counter
    migrate_incidents_to("0009_reference_number_sequence")
    assert numbering.next_number() == issued + 41

    migrate_incidents_to("0008_change_detected_event_type")
    ReferenceCounter.objects.filter(name="incident").update(value=issued + 100)  # the counter ahead of every incident
    migrate_incidents_to("0009_reference_number_sequence")
    assert numbering.next_number() == issued + 101


@pytest.mark.django_db
def test_catch_up_moves_past_numbers_written_directly_and_never_back():
    taken = numbering.next_number()
    IncidentFactory(number=taken + 500)  # written directly, as bench/ bulk loads do
    assert numbering.catch_up() == taken + 500
    assert numbering.next_number() == taken + 501
    assert numbering.catch_up() == taken + 501  # already past every incident: unchanged
    assert numbering.take_numbers(3) == [taken + 502, taken + 503, taken + 504]


@pytest.mark.django_db(transaction=True)
def test_a_test_that_flushes_numbers_from_one():
    # tests/conftest.py restarts the sequence for such tests (the database is empty), so pages they capture show
    # INC-1, INC-2 as they did with the counter row.
    assert [declare().number, IncidentFactory().number] == [1, 2]

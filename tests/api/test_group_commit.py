"""Group commit of single-statement ingests (incidents.alerting.services.group_commit.GroupCommit): concurrent
requests of one process share a statement, and each still gets exactly its own outcome, or the statement's error."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, connection

from incidents.alerting.models import AlertEvent, AlertGroup
from incidents.alerting.parsers import AlertEventIn
from incidents.alerting.services import group_commit
from incidents.alerting.services.ingestion import ingest_alert_events

from .factories import make_integration

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 6


def trigger(key: str) -> AlertEventIn:
    return AlertEventIn(
        action="trigger",
        dedup_key=key,
        summary=f"Disk full on {key}",
        source=key,
        severity="warning",
        occurred_at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
    )


class HeldStatement:
    """Wraps _run_fast_statement: the first call waits until released, so the other threads queue behind it."""

    def __init__(self, monkeypatch, fail_second=False):
        self.original = group_commit.run_fast_statement
        self.calls: list[list[dict]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_second = fail_second
        monkeypatch.setattr(group_commit, "run_fast_statement", self)

    def __call__(self, rows):
        self.calls.append(rows)
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(timeout=30)
        elif self.fail_second:
            raise DatabaseError("the database went away")
        return self.original(rows)


def ingest_in_threads(jobs: dict[str, tuple], held: HeldStatement):
    """Run ingest_alert_events for each job on its own thread (with its own connection); the first holds the
    statement until every other thread has queued. Returns {name: outcomes or exception}."""
    results: dict[str, object] = {}

    def work(name, integration, events):
        try:
            results[name] = ingest_alert_events(integration=integration, events=events)
        except Exception as exc:
            results[name] = exc
        finally:
            connection.close()

    names = list(jobs)
    first = threading.Thread(target=work, args=(names[0], *jobs[names[0]]))
    first.start()
    assert held.entered.wait(timeout=30)
    others = [threading.Thread(target=work, args=(name, *jobs[name])) for name in names[1:]]
    for thread in others:
        thread.start()
    # Every other thread is queued behind the held statement before it is released.
    deadline = datetime.now().timestamp() + 30
    while len(group_commit.shared._queue) < len(others) and datetime.now().timestamp() < deadline:
        threading.Event().wait(0.01)
    held.release.set()
    for thread in [first, *others]:
        thread.join(timeout=60)
    return results


def test_queued_requests_share_one_statement_and_each_gets_its_own_outcomes(monkeypatch):
    integration, _key = make_integration("pagerduty")
    other, _other_key = make_integration("pagerduty", name="second pagerduty")
    held = HeldStatement(monkeypatch)
    jobs = {
        f"t{n}": (integration if n % 2 else other, [trigger(f"host-{n}"), trigger(f"db-{n}")]) for n in range(THREADS)
    }
    # A request repeating a key of another queued request: the two never share a statement.
    jobs["repeat"] = (integration, [trigger("host-1")])

    results = ingest_in_threads(jobs, held)

    assert not [r for r in results.values() if isinstance(r, Exception)], results
    # The held statement carried one request; every queued request but one of the pair went out together.
    assert len(held.calls[0]) == 2
    assert len(held.calls) == 3
    assert len(held.calls[1]) >= 2 * (THREADS - 2)
    for name, (owner, events) in jobs.items():
        outcomes = results[name]
        assert [o.dedup_key for o in outcomes] == [e.dedup_key for e in events]
        for outcome in outcomes:
            group = AlertGroup.objects.get(pk=outcome.group_id)
            assert (group.integration_id, group.dedup_key) == (owner.pk, outcome.dedup_key)
    pair = sorted([results["t1"][0].result, results["repeat"][0].result])
    assert pair == ["deduplicated", "opened"]
    assert AlertGroup.objects.get(integration=integration, dedup_key="host-1").event_count == 2
    assert AlertEvent.objects.count() == 2 * THREADS + 1


def test_an_error_fails_every_request_of_its_statement_and_nothing_is_half_written(monkeypatch):
    integration, _key = make_integration("pagerduty")
    held = HeldStatement(monkeypatch, fail_second=True)
    jobs = {f"t{n}": (integration, [trigger(f"host-{n}")]) for n in range(THREADS)}

    results = ingest_in_threads(jobs, held)

    assert not isinstance(results["t0"], Exception)  # the held statement itself succeeded
    failed = [name for name, result in results.items() if isinstance(result, DatabaseError)]
    assert sorted(failed) == sorted(name for name in jobs if name != "t0")
    assert AlertGroup.objects.count() == AlertEvent.objects.count() == 1


def test_inside_a_transaction_a_caller_runs_its_own_statement(monkeypatch):
    from django.db import transaction

    integration, _key = make_integration("pagerduty")
    monkeypatch.setattr(group_commit.shared, "run", lambda rows: pytest.fail("used the group commit"))
    with transaction.atomic():
        outcomes = ingest_alert_events(integration=integration, events=[trigger("host-1")])
    assert [o.result for o in outcomes] == ["opened"]

import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

# --- The suite on another day -------------------------------------------------------------------------------------
# TEST_CLOCK_SHIFT_DAYS=365 runs every test with the clock that many days ahead (ticking), so a test that compares a
# fixed date with "now" fails today rather than a year from now. .ci/run runs the non-browser suite once this way.
_CLOCK_SHIFT_DAYS = int(os.environ.get("TEST_CLOCK_SHIFT_DAYS", "0") or 0)
_clock_travel = None


def pytest_configure(config):
    global _clock_travel
    if _CLOCK_SHIFT_DAYS:
        _clock_travel = time_machine.travel(datetime.now(UTC) + timedelta(days=_CLOCK_SHIFT_DAYS), tick=True)
        _clock_travel.start()


def pytest_unconfigure(config):
    if _clock_travel is not None:
        _clock_travel.stop()


def pytest_report_header(config):
    if _CLOCK_SHIFT_DAYS:
        return f"clock shifted {_CLOCK_SHIFT_DAYS} days ahead: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return None


@pytest.fixture
def responder(db):
    from tests.factories import ResponderFactory

    return ResponderFactory()


@pytest.fixture
def manager(db):
    from tests.factories import ManagerFactory

    return ManagerFactory()


@pytest.fixture
def viewer(db):
    from tests.factories import ViewerFactory

    return ViewerFactory()


# --- Seed data after a flush ---------------------------------------------------------------------------------
# A transactional test (transaction=True, live_server, real worker processes) ends with a flush that empties every
# table, including the rows the data migrations seeded (the guide's severity levels, checklists, runbooks, groups,
# hotlines, escalation path). serialized_rollback does not restore them reliably once Playwright's event loop runs
# in the test thread, so after such a test the seeds are replayed, whatever the order the suite runs in.
# Convention: a data migration's seeding function is called `seed` and is idempotent.


def _flushes_database(item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    if names & {"transactional_db", "live_server", "django_db_reset_sequences"}:
        return True
    marker = item.get_closest_marker("django_db")
    return bool(marker and (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences")))


def restore_seed_data() -> None:
    from django.apps import apps
    from django.core.management.sql import emit_post_migrate_signal
    from django.db import connection
    from django.db.migrations import RunPython
    from django.db.migrations.executor import MigrationExecutor

    from incidents.models import SeverityPolicy

    if SeverityPolicy.objects.exists():
        return
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    for migration, _backwards in plan:
        for operation in migration.operations:
            if isinstance(operation, RunPython) and operation.code.__name__ == "seed":
                operation.code(apps, None)
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")


def pytest_collection_modifyitems(config, items):
    # One mechanism for every transactional test: the replay below. serialized_rollback would reload rows under their
    # original ids after the flush's post_migrate handlers (group permissions) already made some of them again.
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker and marker.kwargs.get("serialized_rollback"):
            kwargs = {key: value for key, value in marker.kwargs.items() if key != "serialized_rollback"}
            item.add_marker(pytest.mark.django_db(*marker.args, **kwargs), append=False)


def _restores_itself(item) -> bool:
    # A serialized_rollback test reloads the rows captured when the test database was made, keeping their ids;
    # seeding first would put the same names under other ids.
    marker = item.get_closest_marker("django_db") if item is not None else None
    return bool(marker and marker.kwargs.get("serialized_rollback"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # every fixture, including the flush, has been torn down
    _close_sent_mark_connection()
    # nextitem None: the session's fixtures, the test database among them, are gone already.
    if nextitem is None or not _flushes_database(item) or _restores_itself(nextitem):
        return
    from pytest_django.plugin import blocking_manager_key

    with item.config.stash[blocking_manager_key].unblock():
        restore_seed_data()


def _close_sent_mark_connection() -> None:
    """The paging sender's own connection (oncall.paging.sentmarks) is closed after each test, once the test's
    transaction is rolled back, so none is left open on the test database when it is dropped; the sent marks it
    committed go with it (the rollback undid the deletes of the test's batch commits)."""
    from oncall.paging import sentmarks

    sentmarks.close(discard_marks=True)

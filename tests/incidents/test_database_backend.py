"""The PostgreSQL backend's health check: no round trip for a healthy idle connection, and a connection the
server has dropped is found out and replaced before the request's first query."""

import time

import psycopg
import pytest
from django.db import connection
from django.db.backends.postgresql import base as django_postgresql

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_healthy_idle_connection_is_usable_without_asking_the_server(monkeypatch):
    connection.ensure_connection()

    def round_trip(self):
        raise AssertionError("the health check went to the server")

    monkeypatch.setattr(django_postgresql.DatabaseWrapper, "is_usable", round_trip)
    assert connection.is_usable() is True


def test_a_connection_the_server_dropped_is_replaced_before_the_next_query(settings):
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(connection.connection.info.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connection.is_usable() is False

    # What Django does at the start of a request on a persistent connection with CONN_HEALTH_CHECKS.
    connection.health_check_enabled, connection.health_check_done = True, False
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_connection_inside_a_transaction_is_checked_by_the_server(monkeypatch):
    connection.ensure_connection()
    calls = []
    original = django_postgresql.DatabaseWrapper.is_usable

    def counted(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(django_postgresql.DatabaseWrapper, "is_usable", counted)
    connection.connection.execute("BEGIN")
    assert connection.is_usable() is True
    connection.connection.execute("ROLLBACK")
    assert calls == [1]

"""A database that cannot be reached answers 503 with Retry-After, never a 500 (bench/cluster.py's network-fault
scenario found a page answering 500 while the database host was unplugged: the session is read by a middleware,
before any view could catch the error). Any other unhandled exception is still a 500."""

from unittest import mock

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import InterfaceError, OperationalError
from django.test import Client

from tests.factories import ResponderFactory, declare

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in():
    user = ResponderFactory()
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client, user


def _session_load_fails(error):
    return mock.patch.object(SessionStore, "load", side_effect=error)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("connection timeout expired"),
        OperationalError("consuming input failed: could not receive data from server: Connection timed out"),
        InterfaceError("connection already closed"),
    ],
)
def test_a_page_whose_session_cannot_be_read_from_the_database_answers_503_with_retry_after(signed_in, error):
    client, user = signed_in
    incident = declare(by=user, level="P2")
    with _session_load_fails(error):
        response = client.get(incident.get_absolute_url())
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"
    assert "cannot reach its database" in response.content.decode()


def test_the_api_answers_503_in_its_json_error_format(signed_in):
    client, _user = signed_in
    with _session_load_fails(OperationalError("connection timeout expired")):
        response = client.get("/api/v1/incidents/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["code"] == "unavailable"


def test_any_other_unhandled_error_is_still_a_500(signed_in):
    client, user = signed_in
    incident = declare(by=user, level="P2")
    with _session_load_fails(ValueError("a bug")):
        response = client.get(incident.get_absolute_url())
    assert response.status_code == 500
    assert "Retry-After" not in response

"""Schemathesis against the generated OpenAPI schema, through the Django WSGI app, authenticated as a
responder: no 5xx, and every response (status, content type, body) conforms to the schema.

Bounded: positive data, a handful of examples per operation, no coverage phase (it would enumerate
thousands of boundary cases)."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from incidents.models import Incident
from tests.factories import ResponderFactory, ServiceFactory, declare

from .factories import make_integration, make_token

MAX_EXAMPLES = 6


@pytest.fixture
def wsgi_app(db):
    """The real WSGI app, minus its habit of closing the database connection after each request (which would
    close the test's transaction): the same thing Django's test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    schema.config.generation.update(modes=["positive"], max_examples=MAX_EXAMPLES)
    schema.config.phases.coverage.enabled = False
    schema.config.phases.stateful.enabled = False
    return schema


@pytest.fixture
def responder_key(db):
    user = ResponderFactory()
    ServiceFactory(slug="checkout")
    incident = declare(by=user, services=[])
    # INC-1 exists, so generated references sometimes hit it (numbers come from a sequence that tests don't reset).
    Incident.objects.filter(pk=incident.pk).update(number=1)
    make_integration("generic")
    return make_token(user)[1]


def test_api_conforms_to_its_schema(api_schema, responder_key):
    """Every operation, a few generated examples each. (Schemathesis' lazy pytest integration needs pytest
    internals that pytest 9 removed, so the operations are walked here with Hypothesis directly.)"""
    # The fuzzer must not trip the per-token rate limit in its few examples; that has its own test.
    headers = {"Authorization": f"Bearer {responder_key}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures, operations = [], 0

    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=checks, headers=headers)

        try:
            exercise()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(exc)[:1500]}")

    assert operations >= 25
    assert not failures, "\n\n".join(failures)

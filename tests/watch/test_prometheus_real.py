"""Prometheus probes against Debian's real Prometheus on loopback, scraping a target whose values the test sets:
value against threshold (ok and breached), a query that returns nothing, and a malformed query that the real PromQL
parser refuses, each a clear result on the timeline."""

import pytest

from incidents.models import EventType, TimelineEntry
from incidents.watch import services
from incidents.watch.models import Probe, ProbeKind
from incidents.watch.probes import run_probe
from tests.factories import ServiceFactory, declare

from .prometheus import available, real_prometheus

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not available(), reason="Debian's prometheus is not installed (make prometheus)"),
]

METRICS = {"portal_test_error_ratio": 0.12, "portal_test_db_connections_in_use": 87}


@pytest.fixture(scope="module")
def prometheus_server():
    with real_prometheus(METRICS) as (base, target):
        yield base


@pytest.fixture
def prometheus(prometheus_server, settings):
    settings.PROMETHEUS_URL = prometheus_server
    return prometheus_server


def probe(**fields) -> Probe:
    service = fields.pop("service", None) or ServiceFactory()
    return Probe.objects.create(service=service, kind=ProbeKind.PROMETHEUS, name=fields.pop("name", "probe"), **fields)


def test_value_within_and_above_the_threshold(prometheus):
    calm = run_probe(probe(query="portal_test_error_ratio", comparison=">", threshold=0.5))
    assert calm.ok and calm.value == 0.12 and calm.summary == "`portal_test_error_ratio` = 0.12, within threshold"
    burning = run_probe(probe(query="portal_test_error_ratio", comparison=">", threshold=0.05))
    assert not burning.ok and "`portal_test_error_ratio` = 0.12, above the threshold 0.05" in burning.summary
    busy = run_probe(probe(query="sum(portal_test_db_connections_in_use)", comparison=">=", threshold=80))
    assert not busy.ok and busy.value == 87
    assert run_probe(probe(query="scalar(portal_test_db_connections_in_use)", comparison=">=", threshold=100)).ok


def test_a_fractional_timeout_is_accepted_by_the_real_server(prometheus):
    assert run_probe(probe(query="portal_test_error_ratio", threshold=1, timeout_seconds=2.5)).ok


def test_nothing_matching_and_malformed_queries_are_clear_results_on_the_timeline(prometheus, responder):
    service = ServiceFactory(name="Backend API", slug="api")
    probe(service=service, name="Error rate", query="portal_test_error_ratio", comparison=">", threshold=0.05)
    probe(service=service, name="Typo", query="sum(rate(portal_test_error_ratio[5m]", threshold=1)
    probe(service=service, name="Gone", query="portal_test_no_such_metric", threshold=1)
    incident = declare(by=responder, services=[service])
    assert services.run_triage(incident=incident, by=responder) == 1
    entry = TimelineEntry.objects.get(incident=incident, event_type=EventType.TRIAGE_RESULTS)
    assert "Triage of **Backend API**: 3 of 3 failing." in entry.body
    assert "**Error rate**: `portal_test_error_ratio` = 0.12, above the threshold 0.05" in entry.body
    # The real parser's own message.
    assert (
        '**Typo**: query `sum(rate(portal_test_error_ratio[5m]` refused: invalid parameter "query": 1:37: parse error: '
        "unclosed left parenthesis" in entry.body
    )
    assert "**Gone**: query `portal_test_no_such_metric` returned no data" in entry.body
